// The submission role of a session (see session_role.h): mail from our own
// users. AUTH PLAIN and LOGIN (RFC 4954), only under TLS (RFC 8314 §3);
// MAIL only once logged in, and only as the logged-in user's own address;
// relaying to any domain for a logged-in user; GENSTOKEN and REVSTOKEN for
// the user's own pairs. When the Submission Token extension is configured,
// the Token Server (token_server.h) answers LHLO, AUTH STOKEN and the token
// transactions here too.
//
// With auth: backend dovecot, AUTH goes to the provider's Dovecot instead
// (ServerContext::sasl, mta/auth/sasl_authenticator.h): EHLO lists the
// mechanisms Dovecot offers, each client line is relayed as it is, and the
// login is the one Dovecot names (its user=). Dovecot unreachable, too slow
// or unintelligible: 454 4.7.0, the session stays usable.
//
// Contract: one AUTH exchange at a time; after a success the session stays
// logged in (RFC 4954 §4: a second AUTH is refused). A password check runs
// on the work runner (or in Dovecot), the session reading nothing
// meanwhile; a failure is answered after the growing delay
// (SessionCore::authentication_failed).
#pragma once

#include <memory>
#include <optional>
#include <string>

#include "mta/auth/sasl_authenticator.h"
#include "mta/server/session_role.h"
#include "mta/server/token_commands.h"
#include "mta/server/token_server.h"

namespace stokend::server {

class SubmissionRole final : public SessionRole {
 public:
  explicit SubmissionRole(SessionCore& core);
  ~SubmissionRole() override;

  const char* name() const override { return "submission"; }
  bool offers_auth() const override { return true; }
  void add_ehlo_keywords(std::vector<std::string>& lines) const override;

  void command_lhlo(const Command& command) override;
  void command_auth(const Command& command) override;
  void auth_response(const std::string& line) override;
  void cancel_auth() override;
  void command_genstoken(const Command& command) override;
  void command_revstoken(const Command& command) override;

  std::optional<bool> admit_mail(const EsmtpParameter* sync) override;
  bool admit_sender(const message::Path& path, bool token_transaction) override;
  bool admit_recipient(const message::Path& path, const std::string& shown, bool local) override;
  void inbound_message(std::string&) override {}
  TokenServer* token_server() override { return token_server_.get(); }

 private:
  enum class AuthMechanism { none, plain, login, stoken, relayed };

  bool logged_in() const;  // AUTH PLAIN/LOGIN, or AUTH STOKEN
  void auth_verify(std::string login, std::string password);
  void auth_finished(bool success, const std::string& login);
  // auth: backend dovecot (submission_sasl_relay.cc).
  void relay_begin(std::string_view mechanism, std::string_view initial);
  void relay_response(const std::string& line);
  void relay_step(const auth::SaslStep& step);
  void relay_end();
  // GENSTOKEN / REVSTOKEN: checks who may use them here, parses the
  // arguments and fills in the login's address; replies itself on failure.
  std::optional<TokenCommandArguments> token_command_arguments(
      const Command& command, TokenCommandParseResult (*parse)(std::string_view));

  SessionCore& core_;
  std::unique_ptr<TokenServer> token_server_;  // null: no Submission Token extension
  AuthMechanism auth_mechanism_ = AuthMechanism::none;
  std::string auth_login_;                 // LOGIN mechanism: the user name, between steps
  auth::SaslAuthenticator* sasl_;          // context().sasl, kept for the destructor
  std::optional<std::uint32_t> relay_id_;  // the exchange with Dovecot in progress
  std::string relay_mechanism_;            // its mechanism, uppercase
};

}  // namespace stokend::server
