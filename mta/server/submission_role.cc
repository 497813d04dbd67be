// See submission_role.h. The replies are listed in REPLIES.md.
#include "mta/server/submission_role.h"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <cctype>
#include <utility>

#include "common/ascii.h"
#include "common/base64.h"
#include "mta/addresses/recipient_delimiter.h"
#include "mta/mta_metrics.h"
#include "mta/server/sasl.h"
#include "mta/server/server_context.h"
#include "mta/users.h"

namespace stokend::server {
namespace {

// `stokenctl secrets rotate` rewrites the secrets file; pick it up (the
// check itself runs at most once a second).
void refresh_secrets(ServerContext& context) {
  if (context.token_secrets) context.token_secrets->refresh_if_changed();
}

}  // namespace

SubmissionRole::SubmissionRole(SessionCore& core) : core_(core), sasl_(core.context().sasl) {
  if (core.context().tokens) token_server_ = std::make_unique<TokenServer>(core);
}

SubmissionRole::~SubmissionRole() { relay_end(); }

bool SubmissionRole::logged_in() const {
  return core_.state().authenticated_user || (token_server_ && token_server_->logged_in());
}

void SubmissionRole::add_ehlo_keywords(std::vector<std::string>& lines) const {
  // RFC 4954 §4 and RFC 8314 §3: credentials only ever cross an encrypted channel.
  if (!core_.state().tls_active || logged_in()) return;
  if (!core_.context().sasl) return lines.push_back("AUTH PLAIN LOGIN");
  std::string offered = "AUTH";
  for (const auto& mechanism : core_.context().sasl->mechanisms()) offered += " " + mechanism;
  if (offered != "AUTH") lines.push_back(offered);
}

void SubmissionRole::command_lhlo(const Command& command) {
  if (!token_server_) return core_.reply_error(502, "5.5.1", "LHLO is not available on this port");
  token_server_->command_lhlo(command);
}

std::optional<bool> SubmissionRole::admit_mail(const EsmtpParameter* sync) {
  const SessionState& state = core_.state();
  // A token transaction: after LHLO, or EHLO with SYNC before any AUTH
  // PLAIN/LOGIN (the Token Server's; rfcdraft/ §7).
  const bool token_transaction =
      token_server_ && (state.lmtp() || (sync && !state.authenticated_user));
  if (sync && !token_transaction) {
    core_.reply_error(555, "5.5.4", "Unsupported parameter SYNC");
    return std::nullopt;
  }
  if (token_transaction) {
    if (!token_server_->admit_mail(sync)) return std::nullopt;
  } else if (token_server_ && token_server_->logged_in()) {
    core_.reply_error(503, "5.5.1",
                      "A token session delivers synchronously: send LHLO, or MAIL with SYNC");
    return std::nullopt;
  } else if (!state.authenticated_user) {
    mta_metrics::count_rejected(mta_metrics::Rejection::auth_required);
    core_.reply_error(530, "5.7.0", "Authentication required");
    return std::nullopt;
  }
  return token_transaction;
}

bool SubmissionRole::admit_sender(const message::Path& path, bool token_transaction) {
  if (const auto& user = core_.state().authenticated_user) {
    // A submission user sends only as themselves (Postfix's
    // reject_sender_login_mismatch), so one account cannot forge another's mail.
    // Their extended addresses are theirs too: alice may send as alice+news@.
    if (path.is_null || !addresses::belongs_to(path.mailbox.normalized(), *user,
                                               core_.context().config().recipient_delimiter)) {
      mta_metrics::count_rejected(mta_metrics::Rejection::sender_denied);
      core_.reply_error(553, "5.7.1",
                        "Sender address " + (path.is_null ? "<>" : path.mailbox.to_string()) +
                            " not owned by user " + *user);
      return false;
    }
  }
  if (token_transaction) return token_server_->admit_sender(path);
  return true;
}

bool SubmissionRole::admit_recipient(const message::Path& path, const std::string& shown,
                                     bool local) {
  // Authenticated submission may go anywhere: queued for remote delivery.
  if (core_.state().authenticated_user) return true;
  return !refuse_relay(core_, path, shown, local);
}

// ---- AUTH PLAIN and LOGIN (RFC 4954, RFC 4616) ---------------------------

void SubmissionRole::command_auth(const Command& command) {
  const SessionState& state = core_.state();
  if (!state.tls_active) {
    return core_.reply_error(538, "5.7.11",
                             "Encryption required for requested authentication mechanism");
  }
  if (logged_in()) {
    return core_.reply_error(503, "5.5.1", "Already authenticated");
  }
  if (state.transaction.active) {
    return core_.reply_error(503, "5.5.1", "AUTH not allowed during a transaction");
  }
  std::string_view argument = command.argument;
  auto space = argument.find(' ');
  std::string_view mechanism = argument.substr(0, space);
  std::string_view initial =
      space == std::string_view::npos ? std::string_view{} : argument.substr(space + 1);

  if (state.lmtp() && !equals_ignoring_case(mechanism, "STOKEN")) {
    // After LHLO the session is a Token Server session: tokens only.
    return core_.reply_error(504, "5.5.4", "Only AUTH STOKEN is available after LHLO");
  }
  if (core_.context().sasl && !equals_ignoring_case(mechanism, "STOKEN")) {
    return relay_begin(mechanism, initial);
  }
  if (equals_ignoring_case(mechanism, "PLAIN")) {
    auth_mechanism_ = AuthMechanism::plain;
    if (initial.empty()) return core_.ask_sasl_response("");
    return auth_response(std::string(initial));
  }
  if (equals_ignoring_case(mechanism, "LOGIN")) {
    auth_mechanism_ = AuthMechanism::login;
    auth_login_.clear();
    if (initial.empty()) return core_.ask_sasl_response(encode_base64("Username:"));
    return auth_response(std::string(initial));
  }
  if (equals_ignoring_case(mechanism, "STOKEN") && token_server_) {
    auth_mechanism_ = AuthMechanism::stoken;
    if (initial.empty()) return core_.ask_sasl_response("");
    return auth_response(std::string(initial));
  }
  core_.reply_error(504, "5.5.4", "Unrecognized authentication mechanism");
}

void SubmissionRole::auth_response(const std::string& line) {
  if (line == "*") {  // RFC 4954 §4: the client cancels
    relay_end();
    auth_mechanism_ = AuthMechanism::none;
    return core_.reply_error(501, "5.0.0", "Authentication cancelled");
  }
  if (auth_mechanism_ == AuthMechanism::plain) {
    auto credentials = decode_plain(line);
    if (!credentials) return core_.reply_error(501, "5.5.2", "Invalid PLAIN response");
    if (!credentials->authorization_identity.empty() &&
        ascii_lowercase(credentials->authorization_identity) !=
            ascii_lowercase(credentials->authentication_identity)) {
      // Acting as another user is not something we offer.
      core_.wait_for_work();
      return auth_finished(false, credentials->authentication_identity);
    }
    return auth_verify(credentials->authentication_identity, credentials->password);
  }
  if (auth_mechanism_ == AuthMechanism::login) {
    auto decoded = decode_base64(line);
    if (!decoded || decoded->empty())
      return core_.reply_error(501, "5.5.2", "Invalid LOGIN response");
    if (auth_login_.empty()) {
      auth_login_ = *decoded;
      return core_.ask_sasl_response(encode_base64("Password:"));
    }
    return auth_verify(std::exchange(auth_login_, {}), *decoded);
  }
  if (auth_mechanism_ == AuthMechanism::relayed) return relay_response(line);
  if (auth_mechanism_ == AuthMechanism::stoken) {
    auth_mechanism_ = AuthMechanism::none;
    return token_server_->auth_stoken(line);
  }
  core_.reply_error(503, "5.5.1", "No authentication in progress");
}

void SubmissionRole::auth_verify(std::string login, std::string password) {
  ServerContext& context = core_.context();
  context.users.refresh_if_changed();
  const User* user = context.users.find(login);
  // Unknown logins are checked against a dummy hash, so the time taken does
  // not reveal which addresses exist.
  std::string hash = user ? user->password_hash : context.dummy_password_hash;
  bool known = user != nullptr;
  std::string address = user ? user->address : ascii_lowercase(login);
  core_.wait_for_work();
  std::weak_ptr<SessionCore> weak = core_.weak();
  context.workers.submit(
      [this, weak, hash = std::move(hash), password = std::move(password), known, address]() {
        bool ok = verify_password(hash, password) && known;
        // This role lives as long as its session: `this` is safe once the
        // session is.
        return WorkRunner::Completion([this, weak, ok, address] {
          if (auto session = weak.lock()) auth_finished(ok, address);
        });
      });
}

void SubmissionRole::auth_finished(bool success, const std::string& login) {
  mta_metrics::count_auth(auth_mechanism_ == AuthMechanism::login
                              ? mta_metrics::AuthMechanism::login
                              : mta_metrics::AuthMechanism::plain,
                          success);
  auth_mechanism_ = AuthMechanism::none;
  if (success) return core_.authentication_succeeded(login);
  core_.authentication_failed(login);
}

void SubmissionRole::cancel_auth() {
  relay_end();
  auth_mechanism_ = AuthMechanism::none;
  auth_login_.clear();
}

// ---- GENSTOKEN and REVSTOKEN (rfcdraft/) --------------------------------

std::optional<TokenCommandArguments> SubmissionRole::token_command_arguments(
    const Command& command, TokenCommandParseResult (*parse)(std::string_view)) {
  const SessionState& state = core_.state();
  if (!token_server_) {
    core_.reply_error(502, "5.5.1", command.verb_text + " is not available on this port");
    return std::nullopt;
  }
  if (token_server_->logged_in() || state.lmtp()) {
    core_.reply_error(550, "5.7.1", command.verb_text + " is not permitted in a token session");
    return std::nullopt;
  }
  if (!state.authenticated_user) {
    core_.reply_error(530, "5.7.0", "Authentication required");
    return std::nullopt;
  }
  auto parsed = parse(command.argument);
  if (!parsed.arguments) {
    core_.reply_error(parsed.error.code, parsed.error.enhanced, parsed.error.text);
    return std::nullopt;
  }
  // A user manages only pairs whose local address is their own; without
  // one, the login's address is meant.
  if (!parsed.arguments->local) {
    parsed.arguments->local = message::parse_mailbox(*state.authenticated_user, true);
  }
  if (!parsed.arguments->local ||
      parsed.arguments->local->normalized() != *state.authenticated_user) {
    std::string local = parsed.arguments->local ? parsed.arguments->local->normalized() : "";
    core_.reply_error(501, "5.1.7", "Local address <" + local + "> is not yours");
    return std::nullopt;
  }
  return parsed.arguments;
}

void SubmissionRole::command_genstoken(const Command& command) {
  auto arguments = token_command_arguments(command, parse_genstoken_arguments);
  if (!arguments) return;
  std::string local = arguments->local->normalized();
  std::string remote = arguments->remote.normalized();
  tokens::TokenKind kind = arguments->kind;
  ServerContext& context = core_.context();
  refresh_secrets(context);
  core_.wait_for_work();
  std::weak_ptr<SessionCore> weak = core_.weak();
  tokens::TokenAuthority* authority = context.tokens;
  context.workers.submit([weak, authority, kind, remote, local]() {
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
        spdlog::error("session {}: GENSTOKEN {} -> {} failed: {}", session->id(), remote, local,
                      error);
        session->reply(451, "4.5.0", "Cannot generate a token now, try again later");
      } else {
        spdlog::info("session {}: GENSTOKEN {} token for {} -> {}", session->id(),
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

void SubmissionRole::command_revstoken(const Command& command) {
  auto arguments = token_command_arguments(command, parse_revstoken_arguments);
  if (!arguments) return;
  std::string local = arguments->local->normalized();
  std::string remote = arguments->remote.normalized();
  ServerContext& context = core_.context();
  core_.wait_for_work();
  std::weak_ptr<SessionCore> weak = core_.weak();
  tokens::TokenAuthority* authority = context.tokens;
  context.workers.submit([weak, authority, remote, local]() {
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
        spdlog::error("session {}: REVSTOKEN {} -> {} failed: {}", session->id(), remote, local,
                      error);
        session->reply(451, "4.5.0", "Cannot revoke tokens now, try again later");
      } else {
        spdlog::info("session {}: REVSTOKEN {} -> {}: all tokens of the pair revoked",
                     session->id(), remote, local);
        session->reply(250, "2.1.0", "All tokens of the pair revoked");
      }
      session->resume_reading();
    });
  });
}

}  // namespace stokend::server
