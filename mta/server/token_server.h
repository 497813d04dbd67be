// The Token Server of the Submission Token extension (rfcdraft/), inside the
// submission role (submission_role.h): LHLO (LMTP semantics, RFC 2033),
// AUTH STOKEN, RCPT ... STOKEN= MYSTOKEN=, the EHLO + MAIL ... SYNC variant,
// and synchronous per-recipient delivery (token_delivery.h).
//
// Contract (the token session restrictions):
// - AUTH STOKEN logs in as the token's local user only if the token is ours
//   and alive; the pair is checked at MAIL FROM, which must be the token's
//   remote address (never the null sender).
// - A token session never relays (only local users, by no detour), never
//   queues (every recipient's reply follows the mailstore's commit), and
//   never uses GENSTOKEN/REVSTOKEN (the submission role asks logged_in()).
// - A token transaction's recipient is checked by its STOKEN before the
//   user is looked up, so that the reply does not tell a token holder which
//   other addresses exist here.
// - The local users may answer later (a provider's Dovecot,
//   UserLookup::lookup()): the session reads nothing meanwhile. Users that
//   cannot be looked up now: AUTH STOKEN 454 4.7.0, RCPT 451 4.3.0.
#pragma once

#include <optional>
#include <string>
#include <vector>

#include "message/address.h"
#include "mta/server/session_core.h"
#include "mta/server/smtp_command.h"
#include "mta/server/token_commands.h"
#include "mta/user_lookup.h"
#include "tokens/token_authority.h"

namespace stokend::server {

class TokenServer {
 public:
  explicit TokenServer(SessionCore& core) : core_(core) {}

  // Logged in with AUTH STOKEN.
  bool logged_in() const { return login_.has_value(); }

  void command_lhlo(const Command& command);
  // The SASL response of AUTH STOKEN: base64 of "recipient NUL token".
  void auth_stoken(const std::string& response);
  // MAIL opening a token transaction: TLS, a valueless SYNC, AUTH STOKEN
  // after LHLO. Replies and returns false when refused.
  bool admit_mail(const EsmtpParameter* sync);
  // MAIL FROM of a token transaction: the token's remote address.
  bool admit_sender(const message::Path& path);
  // RCPT in a token transaction; replies itself.
  void recipient(const message::Path& path, const std::vector<EsmtpParameter>& parameters);
  // The transaction's message, delivered now: one reply per recipient.
  void deliver(std::string message_id, std::string message);

 private:
  // AUTH STOKEN, once the token is verified on a worker thread (or at once
  // when the recipient is not a user: empty recipient). No check: the store
  // failed with store_error.
  void auth_stoken_verified(const std::string& named, const std::string& recipient,
                            const std::optional<tokens::TokenCheck>& check,
                            const std::string& store_error);
  // AUTH STOKEN, once the users answered whether the recipient is one
  // (a provider's Dovecot answers later: UserLookup::lookup()).
  void auth_stoken_user(const StokenCredentials& credentials, const UserAnswer& answer);
  // RCPT, once the token is verified on a worker thread: the rest of the
  // checks and the reply. No check: the store failed with store_error.
  // Without user_answer the users are asked; when they answer later,
  // user_lookup_pending_ is set and this runs again with their answer.
  void recipient_verified(const message::Path& path, const std::string& shown,
                          const std::string& recipient,
                          const std::optional<std::string>& offered_token,
                          const std::optional<tokens::TokenCheck>& verified,
                          const std::string& store_error, const UserAnswer* user_answer = nullptr);

  // Who the session authenticated as with AUTH STOKEN.
  struct TokenLogin {
    std::string recipient;  // the local user the token delivers to
    tokens::TokenCheck check;
  };

  SessionCore& core_;
  std::optional<TokenLogin> login_;
  bool user_lookup_pending_ = false;  // recipient_verified() waits for the users
};

}  // namespace stokend::server
