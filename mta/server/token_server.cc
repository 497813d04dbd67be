// See token_server.h. The replies follow rfcdraft/ and are listed in
// REPLIES.md.
#include "mta/server/token_server.h"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <chrono>
#include <memory>

#include "common/ascii.h"
#include "message/headers.h"
#include "mta/addresses/local_users.h"
#include "mta/mta_metrics.h"
#include "mta/server/server_context.h"
#include "mta/server/token_commands.h"
#include "mta/server/token_delivery.h"
#include "tokens/pair_hash.h"
#include "tokens/token_format.h"
#include "tokens/wallet_entry.h"

namespace stokend::server {
namespace {

// `stokenctl secrets rotate` rewrites the secrets file; pick it up (the
// check itself runs at most once a second).
void refresh_secrets(ServerContext& context) {
  if (context.token_secrets) context.token_secrets->refresh_if_changed();
}

}  // namespace

void TokenServer::command_lhlo(const Command& command) {
  // The Token Server speaks LMTP after LHLO (rfcdraft/ §7), on submission
  // listeners only. STOKEN and AUTH STOKEN are announced only under TLS;
  // before it, LHLO offers STARTTLS, so an LMTP client can start TLS and
  // say LHLO again (as `swaks --protocol LMTP --tls` does).
  if (command.argument.empty()) return core_.reply_error(501, "5.5.4", "Syntax: LHLO hostname");
  core_.reset_transaction();
  SessionState& state = core_.state();
  state.helo_name = command.argument.substr(0, command.argument.find(' '));
  state.greeting = Greeting::lhlo;
  core_.allow_token_command_lines();
  std::vector<std::string> lines = core_.greeting_lines();
  if (!state.tls_active) {
    if (core_.starttls_offered()) lines.push_back("STARTTLS");
  } else {
    if (!state.authenticated_user && !login_) lines.push_back("AUTH STOKEN");
    lines.push_back("STOKEN");
  }
  core_.reply_lines(250, lines);
}

void TokenServer::auth_stoken(const std::string& response) {
  ServerContext& context = core_.context();
  auto credentials = decode_stoken_response(response);
  if (!credentials) return core_.reply_error(501, "5.5.2", "Invalid STOKEN response");
  // The recipient makes a token alone not enough to get in (rfcdraft/ §7.3):
  // it must be one of our users, and the token must be ours and alive. The
  // pair is checked at MAIL FROM, which names the other half.
  auto mailbox = parse_token_address(credentials->recipient);
  core_.wait_for_work();
  if (!mailbox || !context.config().is_local_domain(mailbox->domain)) {
    return auth_stoken_user(*credentials, UserAnswer{});
  }
  std::weak_ptr<SessionCore> weak = core_.weak();
  const auto answer = context.users.lookup(
      mailbox->normalized(), [this, weak, credentials = *credentials](const UserAnswer& later) {
        if (auto session = weak.lock()) auth_stoken_user(credentials, later);
      });
  if (answer) auth_stoken_user(*credentials, *answer);
}

void TokenServer::auth_stoken_user(const StokenCredentials& credentials, const UserAnswer& answer) {
  ServerContext& context = core_.context();
  if (answer.status == UserAnswer::Status::temporary_failure) {
    spdlog::warn("session {}: AUTH STOKEN not checked: user directory unavailable", core_.id());
    core_.reply(454, "4.7.0", "Temporary authentication failure");
    return core_.resume_reading();
  }
  const std::string recipient =
      answer.status == UserAnswer::Status::found ? answer.user.address : std::string();
  if (recipient.empty()) {
    return auth_stoken_verified(credentials.recipient, recipient, std::nullopt, {});
  }
  refresh_secrets(context);
  // Verification may ask the token store (a Redis server on the network,
  // perhaps): on a worker thread, never on the loop.
  std::weak_ptr<SessionCore> weak = core_.weak();
  tokens::TokenAuthority* authority = context.tokens;
  context.workers.submit([this, weak, authority, named = credentials.recipient, recipient,
                          token = credentials.token]() -> WorkRunner::Completion {
    std::optional<tokens::TokenCheck> check;
    std::string error;
    try {
      check = authority->verify_unbound(token);
    } catch (const std::exception& failure) {
      error = failure.what();
    }
    return [this, weak, named, recipient, check, error] {
      auto session = weak.lock();
      if (!session) return;
      auth_stoken_verified(named, recipient, check, error);
    };
  });
}

void TokenServer::auth_stoken_verified(const std::string& named, const std::string& recipient,
                                       const std::optional<tokens::TokenCheck>& check,
                                       const std::string& store_error) {
  if (!recipient.empty() && !check) {
    spdlog::error("session {}: AUTH STOKEN: token store: {}", core_.id(), store_error);
    core_.reply(454, "4.7.0", "Temporary authentication failure");
    return core_.resume_reading();
  }
  if (recipient.empty() || !check->valid()) {
    const std::string why = recipient.empty() ? std::string("recipient is not a local user")
                                              : std::string(tokens::verdict_name(check->verdict)) +
                                                    ": " + check->reason;
    spdlog::info("session {}: AUTH STOKEN refused for {}: {}", core_.id(), named, why);
    mta_metrics::count_auth(mta_metrics::AuthMechanism::stoken, false);
    return core_.authentication_failed(named);
  }
  spdlog::info("session {}: authenticated with a {} token for {}", core_.id(),
               tokens::kind_name(*check->kind), recipient);
  login_ = TokenLogin{recipient, *check};
  mta_metrics::count_auth(mta_metrics::AuthMechanism::stoken, true);
  core_.reply(235, "2.7.0", "Authentication successful");
  core_.resume_reading();
}

bool TokenServer::admit_mail(const EsmtpParameter* sync) {
  if (!core_.state().tls_active) {
    core_.reply_error(530, "5.7.0", "Must issue a STARTTLS command first");
    return false;
  }
  if (sync && sync->has_value) {
    core_.reply_error(501, "5.5.4", "SYNC takes no value");
    return false;
  }
  if (core_.state().lmtp() && !login_) {
    mta_metrics::count_rejected(mta_metrics::Rejection::auth_required);
    core_.reply_error(530, "5.7.0", "Authentication required");
    return false;
  }
  return true;
}

bool TokenServer::admit_sender(const message::Path& path) {
  // A token lets its holder send as the token's remote address, and as
  // nobody else: the pair hash binds MAIL FROM (rfcdraft/ §7).
  if (path.is_null) {
    mta_metrics::count_rejected(mta_metrics::Rejection::sender_denied);
    core_.reply_error(553, "5.7.1", "A token session cannot use the null sender");
    return false;
  }
  if (login_ && !tokens::TokenAuthority::pair_matches(login_->check, path.mailbox.normalized(),
                                                      login_->recipient)) {
    spdlog::info("session {}: MAIL FROM {} is not the remote address of the token", core_.id(),
                 path.mailbox.to_string());
    mta_metrics::count_rejected(mta_metrics::Rejection::sender_denied);
    core_.reply_error(553, "5.7.1",
                      "Sender address " + path.mailbox.to_string() +
                          " is not the address the token was issued to");
    return false;
  }
  return true;
}

void TokenServer::recipient(const message::Path& path,
                            const std::vector<EsmtpParameter>& parameters) {
  ServerContext& context = core_.context();
  Transaction& transaction = core_.state().transaction;
  const EsmtpParameter* stoken = nullptr;
  const EsmtpParameter* mystoken = nullptr;
  for (const auto& parameter : parameters) {
    if (parameter.keyword == "STOKEN") {
      stoken = &parameter;
    } else if (parameter.keyword == "MYSTOKEN") {
      mystoken = &parameter;
    } else {
      return core_.reply_error(555, "5.5.4", "Unsupported parameter " + parameter.keyword);
    }
  }
  const message::Mailbox& mailbox = path.mailbox;
  std::string shown = "<" + mailbox.to_string() + ">";
  // A token session never relays: only our own users, by no detour.
  if (!message::relay_trick(path).empty() || mailbox.domain.empty() || mailbox.domain_is_literal ||
      !context.config().is_local_domain(mailbox.domain)) {
    spdlog::info("session {}: token session tried to relay to {}", core_.id(), shown);
    mta_metrics::count_rejected(mta_metrics::Rejection::relay_denied);
    return core_.reply_error(550, "5.7.1", shown + ": Relay access denied in a token session");
  }
  if (!stoken || !stoken->has_value || stoken->value.empty()) {
    return core_.reply_error(550, "5.7.1", shown + ": STOKEN required in a token session");
  }
  // The token is checked before the user exists: the reply must not tell a
  // token holder which other addresses exist here.
  const std::string sender = transaction.sender.mailbox.normalized();
  const std::string recipient = mailbox.normalized();
  refresh_secrets(context);
  // Verification may ask the token store, which may be a Redis server on
  // the network: on a worker thread, never on the loop.
  std::optional<std::string> offered;
  if (mystoken && mystoken->has_value) offered = mystoken->value;
  core_.wait_for_work();
  std::weak_ptr<SessionCore> weak = core_.weak();
  tokens::TokenAuthority* authority = context.tokens;
  context.workers.submit([this, weak, authority, path, shown, sender, recipient,
                          token = stoken->value, offered]() -> WorkRunner::Completion {
    std::optional<tokens::TokenCheck> check;
    std::string error;
    try {
      check = authority->verify(token, sender, recipient);
    } catch (const std::exception& failure) {
      error = failure.what();
    }
    return [this, weak, path, shown, recipient, offered, check, error] {
      auto session = weak.lock();
      if (!session) return;
      recipient_verified(path, shown, recipient, offered, check, error);
      if (!user_lookup_pending_) session->resume_reading();
    };
  });
}

void TokenServer::recipient_verified(const message::Path& path, const std::string& shown,
                                     const std::string& recipient,
                                     const std::optional<std::string>& offered_token,
                                     const std::optional<tokens::TokenCheck>& verified,
                                     const std::string& store_error,
                                     const UserAnswer* user_answer) {
  ServerContext& context = core_.context();
  Transaction& transaction = core_.state().transaction;
  const message::Mailbox& mailbox = path.mailbox;
  const std::string sender = transaction.sender.mailbox.normalized();
  if (!verified) {
    spdlog::error("session {}: RCPT: token store: {}", core_.id(), store_error);
    mta_metrics::count_rejected(mta_metrics::Rejection::local_error);
    return core_.reply(451, "4.3.0", shown + ": Token store unavailable, try again later");
  }
  const tokens::TokenCheck& check = *verified;
  if (!check.valid()) {
    spdlog::info("session {}: STOKEN for {} from {} refused: {}: {}", core_.id(), recipient, sender,
                 tokens::verdict_name(check.verdict), check.reason);
    // X.7.30 (rfcdraft/): the Remote Client drops this token and falls back.
    mta_metrics::count_rejected(mta_metrics::Rejection::token_refused);
    return core_.reply_error(550, "5.7.30",
                             shown + ": Token " + std::string(tokens::verdict_name(check.verdict)) +
                                 ": " + check.reason);
  }
  // The users may answer later (a provider's Dovecot: UserLookup::lookup()).
  std::optional<UserAnswer> answer;
  if (user_answer) {
    answer = *user_answer;
  } else {
    std::weak_ptr<SessionCore> weak = core_.weak();
    // alice+news@ is alice's (addresses/local_users.h).
    answer = addresses::lookup_local_user(
        context.users, recipient, context.config().recipient_delimiter,
        [this, weak, path, shown, recipient, offered_token, verified,
         store_error](const UserAnswer& later) {
          auto session = weak.lock();
          if (!session) return;
          user_lookup_pending_ = false;
          recipient_verified(path, shown, recipient, offered_token, verified, store_error, &later);
          session->resume_reading();
        });
    if (!answer) {
      user_lookup_pending_ = true;
      return;
    }
  }
  if (answer->status == UserAnswer::Status::temporary_failure) {
    mta_metrics::count_rejected(mta_metrics::Rejection::unverified_recipient);
    return core_.reply(451, "4.3.0", shown + ": Temporary failure in user lookup, try again later");
  }
  const User* user = answer->status == UserAnswer::Status::found ? &answer->user : nullptr;
  if (!user) {
    mta_metrics::count_rejected(mta_metrics::Rejection::unknown_recipient);
    return core_.reply_error(550, "5.1.1", shown + ": Recipient address rejected: user unknown");
  }
  Route route = context.routes()->route_for(ascii_lowercase(mailbox.domain), true);
  if (route.transport != Route::Transport::maildir && route.transport != Route::Transport::lmtp) {
    // The domain is relayed to another MX: nothing here can deliver it
    // synchronously. 4xx: the Remote Client falls back and keeps its token.
    return core_.reply(451, "4.3.5",
                       shown + ": No direct delivery for this domain; use ordinary mail");
  }
  TokenRecipient token;
  token.address = user->address;
  token.token_kind = *check.kind;
  token.renew_due = check.renew_due;
  if (offered_token) {
    // The Remote Client's own token for the way back: the issuer's pair is
    // (remote = our user, local = the sender). An offer, never an error.
    auto offered = tokens::wallet_entry_for(*offered_token, user->address, sender,
                                            context.tokens->now(), true, "MYSTOKEN");
    if (offered.entry) {
      token.offered = std::move(offered.entry);
    } else {
      spdlog::debug("session {}: MYSTOKEN for {} ignored: {}", core_.id(), user->address,
                    offered.reason);
    }
  }

  bool duplicate =
      std::any_of(transaction.recipients.begin(), transaction.recipients.end(),
                  [&](const auto& recipient) { return recipient.address == user->address; });
  // LMTP answers once per accepted RCPT (RFC 2033 §4.2), and one mailbox
  // gets one copy: a repeated recipient is refused rather than answered twice.
  if (duplicate) return core_.reply_error(503, "5.5.1", shown + ": Duplicate recipient");
  transaction.recipients.push_back({user->address, true, std::move(token)});
  ++transaction.accepted_rcpt_commands;
  core_.reply(250, "2.1.5", "Ok");
}

void TokenServer::deliver(std::string message_id, std::string message) {
  const Transaction& transaction = core_.state().transaction;
  queue::QueuedMessage queued;
  queued.id = message_id;
  queued.envelope.sender = transaction.sender.mailbox.to_string();
  queued.envelope.smtputf8 = transaction.utf8;
  queued.arrival = std::chrono::system_clock::now();
  queued.chat = message::is_chat_message(message);
  queued.size = message.size();
  std::vector<TokenRecipient> recipients;
  for (const auto& recipient : transaction.recipients) {
    queued.envelope.recipients.push_back(recipient.address);
    recipients.push_back(*recipient.token);
  }
  queued.data = std::make_shared<const std::string>(std::move(message));
  std::size_t count = recipients.size();
  core_.reset_transaction();
  core_.wait_for_work();
  std::weak_ptr<SessionCore> weak = core_.weak();
  core_.context().token_delivery->deliver(
      queued, std::move(recipients), [weak, count](std::vector<std::string> replies) {
        auto session = weak.lock();
        if (!session) return;
        // RFC 2033 §4.2: one reply per accepted recipient, in RCPT order.
        for (std::size_t i = 0; i < count; ++i) {
          session->reply_line(i < replies.size() ? replies[i]
                                                 : "451 4.3.0 Delivery result missing");
        }
        if (std::any_of(replies.begin(), replies.end(),
                        [](const std::string& reply) { return reply.starts_with('2'); })) {
          mta_metrics::count_accepted(mta_metrics::Role::token_server);
        }
        session->message_accepted();
        session->resume_reading();
      });
}

}  // namespace stokend::server
