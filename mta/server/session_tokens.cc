// The Token Server half of Session (see session.h): AUTH STOKEN, RCPT with
// STOKEN= / MYSTOKEN=, synchronous delivery, GENSTOKEN and REVSTOKEN. The
// replies follow rfcdraft/ and are listed in REPLIES.md.
#include <spdlog/spdlog.h>

#include <algorithm>

#include "message/headers.h"
#include "mta/server/session.h"
#include "mta/server/token_commands.h"
#include "tokens/harvest.h"
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

void Session::auth_stoken(const std::string& response) {
  auth_mechanism_ = AuthMechanism::none;
  auto credentials = decode_stoken_response(response);
  if (!credentials) return reply_error(501, "5.5.2", "Invalid STOKEN response");
  // The recipient makes a token alone not enough to get in (rfcdraft/ §7.3):
  // it must be one of our users, and the token must be ours and alive. The
  // pair is checked at MAIL FROM, which names the other half.
  std::string why = "recipient is not a local user";
  std::string recipient;
  tokens::TokenCheck check;
  auto mailbox = parse_token_address(credentials->recipient);
  if (mailbox && context_.config.is_local_domain(mailbox->domain)) {
    context_.users.refresh_if_changed();
    if (const User* user = context_.users.find(mailbox->normalized())) {
      recipient = user->address;
      refresh_secrets(context_);
      try {
        check = context_.tokens->verify_unbound(credentials->token);
      } catch (const std::exception& error) {
        spdlog::error("session {}: AUTH STOKEN: token store: {}", session_id_, error.what());
        return reply(454, "4.7.0", "Temporary authentication failure");
      }
      why = std::string(tokens::verdict_name(check.verdict)) + ": " + check.reason;
    }
  }
  if (recipient.empty() || !check.valid()) {
    spdlog::info("session {}: AUTH STOKEN refused for {}: {}", session_id_, credentials->recipient,
                 why);
    wait_for_work();
    return auth_finished(false, credentials->recipient);
  }
  spdlog::info("session {}: authenticated with a {} token for {}", session_id_,
               tokens::kind_name(*check.kind), recipient);
  token_login_ = TokenLogin{recipient, std::move(check)};
  reply(235, "2.7.0", "Authentication successful");
}

void Session::token_recipient(const message::Path& path,
                              const std::vector<EsmtpParameter>& parameters) {
  const EsmtpParameter* stoken = nullptr;
  const EsmtpParameter* mystoken = nullptr;
  for (const auto& parameter : parameters) {
    if (parameter.keyword == "STOKEN") {
      stoken = &parameter;
    } else if (parameter.keyword == "MYSTOKEN") {
      mystoken = &parameter;
    } else {
      return reply_error(555, "5.5.4", "Unsupported parameter " + parameter.keyword);
    }
  }
  const message::Mailbox& mailbox = path.mailbox;
  std::string shown = "<" + mailbox.to_string() + ">";
  // A token session never relays: only our own users, by no detour.
  if (!message::relay_trick(path).empty() || mailbox.domain.empty() || mailbox.domain_is_literal ||
      !context_.config.is_local_domain(mailbox.domain)) {
    spdlog::info("session {}: token session tried to relay to {}", session_id_, shown);
    return reply_error(550, "5.7.1", shown + ": Relay access denied in a token session");
  }
  if (!stoken || !stoken->has_value || stoken->value.empty()) {
    return reply_error(550, "5.7.1", shown + ": STOKEN required in a token session");
  }
  // The token is checked before the user exists: the reply must not tell a
  // token holder which other addresses exist here.
  const std::string sender = transaction_.sender.mailbox.normalized();
  const std::string recipient = mailbox.normalized();
  refresh_secrets(context_);
  tokens::TokenCheck check;
  try {
    check = context_.tokens->verify(stoken->value, sender, recipient);
  } catch (const std::exception& error) {
    spdlog::error("session {}: RCPT: token store: {}", session_id_, error.what());
    return reply(451, "4.3.0", shown + ": Token store unavailable, try again later");
  }
  if (!check.valid()) {
    spdlog::info("session {}: STOKEN for {} from {} refused: {}: {}", session_id_, recipient,
                 sender, tokens::verdict_name(check.verdict), check.reason);
    // X.7.30 (rfcdraft/): the Remote Client drops this token and falls back.
    return reply_error(550, "5.7.30",
                       shown + ": Token " + std::string(tokens::verdict_name(check.verdict)) +
                           ": " + check.reason);
  }
  context_.users.refresh_if_changed();
  const User* user = context_.users.find(recipient);
  if (!user) return reply_error(550, "5.1.1", shown + ": Recipient address rejected: user unknown");
  Route route = context_.routes->route_for(message::ascii_lowercase(mailbox.domain), true);
  if (route.transport != Route::Transport::maildir && route.transport != Route::Transport::lmtp) {
    // The domain is relayed to another MX: nothing here can deliver it
    // synchronously. 4xx: the Remote Client falls back and keeps its token.
    return reply(451, "4.3.5", shown + ": No direct delivery for this domain; use ordinary mail");
  }
  TokenRecipient token;
  token.address = user->address;
  token.token_kind = *check.kind;
  token.renew_due = check.renew_due;
  if (mystoken && mystoken->has_value) {
    // The Remote Client's own token for the way back: the issuer's pair is
    // (remote = our user, local = the sender). An offer, never an error.
    auto offered = tokens::wallet_entry_for(mystoken->value, user->address, sender,
                                            context_.tokens->now(), true, "MYSTOKEN");
    if (offered.entry) {
      token.offered = std::move(offered.entry);
    } else {
      spdlog::debug("session {}: MYSTOKEN for {} ignored: {}", session_id_, user->address,
                    offered.reason);
    }
  }

  bool duplicate =
      std::any_of(transaction_.recipients.begin(), transaction_.recipients.end(),
                  [&](const auto& recipient) { return recipient.address == user->address; });
  // LMTP answers once per accepted RCPT (RFC 2033 §4.2), and one mailbox
  // gets one copy: a repeated recipient is refused rather than answered twice.
  if (duplicate) return reply_error(503, "5.5.1", shown + ": Duplicate recipient");
  transaction_.recipients.push_back({user->address, true, std::move(token)});
  ++transaction_.accepted_rcpt_commands;
  reply(250, "2.1.5", "Ok");
}

void Session::harvest_tokens(std::string& body) {
  if (!context_.token_store || transaction_.sender.is_null) return;
  // Most mail carries no token: look for the field name in the header
  // section before parsing it.
  const std::string_view header = message::header_section(body);
  constexpr std::string_view needle = "submission-token";
  auto found =
      std::search(header.begin(), header.end(), needle.begin(), needle.end(),
                  [](char a, char b) { return std::tolower(static_cast<unsigned char>(a)) == b; });
  if (found == header.end()) return;

  std::vector<std::string> recipients;
  for (const auto& recipient : transaction_.recipients) recipients.push_back(recipient.address);
  const std::string sender = transaction_.sender.mailbox.normalized();
  const std::int64_t now = tokens::TokenAuthority::system_clock();
  auto harvest =
      tokens::harvest_submission_tokens(message::parse_headers(header), sender, recipients, now);
  if (harvest.fields == 0) return;
  for (const auto& reason : harvest.ignored) {
    spdlog::debug("session {}: Submission-Token from {} ignored: {}", session_id_, sender, reason);
  }
  if (!harvest.accepted.empty()) {
    spdlog::info("session {}: {} Submission-Token(s) from {} for the wallet", session_id_,
                 harvest.accepted.size(), sender);
    tokens::TokenStore* store = context_.token_store;
    // The store fsyncs: a worker thread, and nobody waits for it.
    context_.workers.submit([store, accepted = std::move(harvest.accepted), now]() {
      try {
        tokens::store_harvested(*store, accepted, now);
      } catch (const std::exception& error) {
        spdlog::error("harvested tokens not stored: {}", error.what());
      }
      return WorkRunner::Completion{};
    });
  }
  if (context_.config.tokens.remove_submission_token_headers) {
    body = message::remove_header_fields(body, tokens::submission_token_field);
  }
}

void Session::deliver_with_tokens(std::string message_id, std::string message) {
  queue::QueuedMessage queued;
  queued.id = message_id;
  queued.envelope.sender = transaction_.sender.mailbox.to_string();
  queued.envelope.smtputf8 = transaction_.utf8;
  queued.arrival = std::chrono::system_clock::now();
  queued.chat = message::is_chat_message(message);
  queued.size = message.size();
  std::vector<TokenRecipient> recipients;
  for (const auto& recipient : transaction_.recipients) {
    queued.envelope.recipients.push_back(recipient.address);
    recipients.push_back(*recipient.token);
  }
  queued.data = std::make_shared<const std::string>(std::move(message));
  std::size_t count = recipients.size();
  reset_transaction();
  wait_for_work();
  std::weak_ptr<Session> weak = weak_from_this();
  context_.token_delivery->deliver(
      queued, std::move(recipients), [weak, count](std::vector<std::string> replies) {
        auto session = weak.lock();
        if (!session) return;
        // RFC 2033 §4.2: one reply per accepted recipient, in RCPT order.
        for (std::size_t i = 0; i < count; ++i) {
          session->reply_line(i < replies.size() ? replies[i]
                                                 : "451 4.3.0 Delivery result missing");
        }
        ++session->messages_accepted_;
        session->resume_reading();
      });
}

std::optional<TokenCommandArguments> Session::token_command_arguments(
    const Command& command, TokenCommandParseResult (*parse)(std::string_view)) {
  if (listener_.role != Role::submission || !context_.tokens) {
    reply_error(502, "5.5.1", command.verb_text + " is not available on this port");
    return std::nullopt;
  }
  if (token_login_ || lmtp_) {
    reply_error(550, "5.7.1", command.verb_text + " is not permitted in a token session");
    return std::nullopt;
  }
  if (!authenticated_user_) {
    reply_error(530, "5.7.0", "Authentication required");
    return std::nullopt;
  }
  auto parsed = parse(command.argument);
  if (!parsed.arguments) {
    reply_error(parsed.error.code, parsed.error.enhanced, parsed.error.text);
    return std::nullopt;
  }
  // A user manages only pairs whose local address is their own; without
  // one, the login's address is meant.
  if (!parsed.arguments->local) {
    parsed.arguments->local = message::parse_mailbox(*authenticated_user_, true);
  }
  if (!parsed.arguments->local || parsed.arguments->local->normalized() != *authenticated_user_) {
    std::string local = parsed.arguments->local ? parsed.arguments->local->normalized() : "";
    reply_error(501, "5.1.7", "Local address <" + local + "> is not yours");
    return std::nullopt;
  }
  return parsed.arguments;
}

void Session::command_genstoken(const Command& command) {
  auto arguments = token_command_arguments(command, parse_genstoken_arguments);
  if (!arguments) return;
  std::string local = arguments->local->normalized();
  std::string remote = arguments->remote.normalized();
  tokens::TokenKind kind = arguments->kind;
  refresh_secrets(context_);
  wait_for_work();
  std::weak_ptr<Session> weak = weak_from_this();
  tokens::TokenAuthority* authority = context_.tokens;
  context_.workers.submit([weak, authority, kind, remote, local]() {
    std::string token;
    std::string error;
    try {
      token = kind == tokens::TokenKind::temporary ? authority->mint_temporary(remote, local)
                                                   : authority->permanent_for(remote, local);
    } catch (const std::exception& failure) {
      error = failure.what();
    }
    return WorkRunner::Completion([weak, kind, remote, local, token, error] {
      auto session = weak.lock();
      if (!session) return;
      if (!error.empty()) {
        spdlog::error("session {}: GENSTOKEN {} -> {} failed: {}", session->session_id_, remote,
                      local, error);
        session->reply(451, "4.5.0", "Cannot generate a token now, try again later");
      } else {
        spdlog::info("session {}: GENSTOKEN {} token for {} -> {}", session->session_id_,
                     tokens::kind_name(kind), remote, local);
        session->reply(
            250, "2.1.11",
            token + (kind == tokens::TokenKind::temporary ? " Temporary token generated"
                                                          : " Permanent token generated"));
      }
      session->resume_reading();
    });
  });
}

void Session::command_revstoken(const Command& command) {
  auto arguments = token_command_arguments(command, parse_revstoken_arguments);
  if (!arguments) return;
  std::string local = arguments->local->normalized();
  std::string remote = arguments->remote.normalized();
  wait_for_work();
  std::weak_ptr<Session> weak = weak_from_this();
  tokens::TokenAuthority* authority = context_.tokens;
  context_.workers.submit([weak, authority, remote, local]() {
    std::string error;
    try {
      authority->revoke(remote, local);
    } catch (const std::exception& failure) {
      error = failure.what();
    }
    return WorkRunner::Completion([weak, remote, local, error] {
      auto session = weak.lock();
      if (!session) return;
      if (!error.empty()) {
        spdlog::error("session {}: REVSTOKEN {} -> {} failed: {}", session->session_id_, remote,
                      local, error);
        session->reply(451, "4.5.0", "Cannot revoke tokens now, try again later");
      } else {
        spdlog::info("session {}: REVSTOKEN {} -> {}: all tokens of the pair revoked",
                     session->session_id_, remote, local);
        session->reply(250, "2.1.0", "All tokens of the pair revoked");
      }
      session->resume_reading();
    });
  });
}

}  // namespace stokend::server
