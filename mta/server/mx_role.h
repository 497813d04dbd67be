// The MX role of a session (see session_role.h): mail for the local domains
// from anyone, and nothing else. No AUTH, no LHLO, no GENSTOKEN/REVSTOKEN,
// no SYNC; a recipient outside the local domains is refused (no relaying);
// an unknown local user is refused, or checked at the next hop for a
// `recipient_probe` domain (the session core does the lookup). Inbound
// Submission-Token fields go to the recipients' wallets (tokens/harvest.h)
// and, when so configured, out of the message.
#pragma once

#include "mta/server/session_role.h"

namespace stokend::server {

class MxRole final : public SessionRole {
 public:
  explicit MxRole(SessionCore& core) : core_(core) {}

  const char* name() const override { return "mx"; }
  bool offers_auth() const override { return false; }
  void add_ehlo_keywords(std::vector<std::string>&) const override {}

  void command_lhlo(const Command& command) override;
  void command_auth(const Command& command) override;
  void auth_response(const std::string& line) override;
  void cancel_auth() override {}
  void command_genstoken(const Command& command) override;
  void command_revstoken(const Command& command) override;

  std::optional<bool> admit_mail(const EsmtpParameter* sync) override;
  bool admit_sender(const message::Path&, bool) override { return true; }
  bool admit_recipient(const message::Path& path, const std::string& shown, bool local) override {
    return !refuse_relay(core_, path, shown, local);
  }
  void inbound_message(std::string& body) override;
  TokenServer* token_server() override { return nullptr; }

 private:
  SessionCore& core_;
};

}  // namespace stokend::server
