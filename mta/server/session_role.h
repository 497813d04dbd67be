// What differs between the listener roles of a session: the session core
// (session.h) runs the RFC 5321 state machine and asks its role where the
// roles differ. One piece per role:
// - MxRole (mx_role.cc): inbound mail for the local domains only; no AUTH,
//   no relaying, unknown users refused or checked at the next hop
//   (recipient_probe), Submission-Token fields harvested into wallets.
// - SubmissionRole (submission_role.cc): AUTH PLAIN/LOGIN under TLS,
//   senders only as the logged-in user, relaying for logged-in users,
//   GENSTOKEN/REVSTOKEN; with the Token Server (token_server.h) when the
//   Submission Token extension is configured.
//
// Contract: each call that refuses replies itself (through SessionCore) and
// returns false / nullopt; the core then stops handling the command. The
// replies are those of REPLIES.md, in the same order as before the split.
#pragma once

#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "message/address.h"
#include "mta/server/session_core.h"
#include "mta/server/smtp_command.h"

namespace stokend {
struct ListenerConfig;
}

namespace stokend::server {

class TokenServer;

class SessionRole {
 public:
  virtual ~SessionRole() = default;

  virtual const char* name() const = 0;  // in the session's start log line
  // AUTH is offered here: SASL responses may be longer than command lines.
  virtual bool offers_auth() const = 0;
  // Keywords this role adds to the EHLO reply before DSN and HELP.
  virtual void add_ehlo_keywords(std::vector<std::string>& lines) const = 0;

  virtual void command_lhlo(const Command& command) = 0;
  virtual void command_auth(const Command& command) = 0;
  // The line after a 334 challenge (ask_sasl_response), "*" included.
  virtual void auth_response(const std::string& line) = 0;
  // The exchange in progress ends (a refused line, STARTTLS, a cancel).
  virtual void cancel_auth() = 0;
  virtual void command_genstoken(const Command& command) = 0;
  virtual void command_revstoken(const Command& command) = 0;

  // MAIL, after its argument parsed: whether it opens a token transaction
  // (sync: the SYNC parameter, if given); nullopt when refused.
  virtual std::optional<bool> admit_mail(const EsmtpParameter* sync) = 0;
  // MAIL's sender, after the parameters and DSN passed.
  virtual bool admit_sender(const message::Path& path, bool token_transaction) = 0;
  // RCPT outside a token transaction: whether this client may send to path
  // (local: one of our domains). Refuses relaying where not allowed.
  virtual bool admit_recipient(const message::Path& path, const std::string& shown, bool local) = 0;
  // A complete message of an ordinary transaction, before it is queued.
  virtual void inbound_message(std::string& body) = 0;
  // The Token Server, where this role has one: it answers RCPT and delivers
  // the message of the token transactions admit_mail() opened.
  virtual TokenServer* token_server() = 0;

 protected:
  // The relay rule for clients that have not logged in (RFC 5321 §3.6,
  // RFC 2505 §2.6): only our own domains, by no detour. Replies 550 5.7.1
  // and returns true when path is refused.
  static bool refuse_relay(SessionCore& core, const message::Path& path, const std::string& shown,
                           bool local);
};

// The piece for listener.role.
std::unique_ptr<SessionRole> make_session_role(SessionCore& core, const ListenerConfig& listener);

}  // namespace stokend::server
