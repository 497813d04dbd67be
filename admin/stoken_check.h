// stokenctl's `stoken check`: a conformance check of any Token Server
// against the draft (rfcdraft/), from the outside, as a Remote Client sees
// it. Each check prints one line: PASS, FAIL or SKIP, the draft section it
// tests, and what was seen; --json prints the same as one JSON document.
//
// Checks, in order: discovery (SRV records with --domain; the certificate
// verified against the target's name, §6), STOKEN absent before TLS and
// after EHLO (§3.2), AUTH STOKEN with the right recipient (§7.3.2) and
// refused with another recipient and with a tampered token (§7.3.2,
// §4.4.5), MAIL for another sender refused (a token for another pair,
// §7.4), RCPT without STOKEN= refused (§7.5), delivery with a per-recipient
// reply only once the message is stored (§8.1; checked in --maildir when
// given), the 2.1.13 exchange and the permanent token working next time
// (§8.3), and REVSTOKEN in force (§5.3, needs an account).
//
// The session form (rfcdraft/ Appendix D): --dialect lhlo checks the
// draft's LHLO form only; ehlo-sync the EHLO + MAIL ... SYNC form of
// Section 10; auto (the default) tries LHLO, reports a server that
// refuses it or announces no STOKEN there, and goes on in the SYNC form
// when the EHLO reply under TLS lists STOKEN, as a Remote Client would.
// Without AUTH STOKEN (optional in the SYNC form) the token's refusals
// are checked at RCPT instead: another recipient, a tampered token,
// another sender, no STOKEN= (§7.5, Section 10).
//
// The token comes from --token (with --from), or is minted for the check:
// --submission HOST:PORT with --user and --password or --password-file logs
// in with AUTH PLAIN (over TLS as --tls says) and sends GENSTOKEN TEMP (§5.2) for
// the pair (--from, or a made-up remote address; the user).
//
// Contract: run_check() returns 0 when no check failed, 1 when one did or
// when the server could not be checked at all (unreachable, garbage,
// silence past --timeout, a dropped connection: each with one clear line).
// Tokens and passwords are never printed.
#pragma once

#include <ostream>
#include <string>

#include "admin/stoken_session.h"

namespace stokend::admin {

struct CheckOptions {
  std::string from;
  std::string to;
  std::string token;
  std::string submission;  // HOST:PORT of the submission service (implicit TLS)
  std::string user;
  std::string password;
  std::string password_file;
  std::string maildir;           // the recipient's Maildir, to see the store commit
  std::string dialect = "auto";  // auto | lhlo | ehlo-sync (rfcdraft/ Appendix D.2)
  // An account at the Token Server for a SYNC session that wants one
  // before MAIL (Dovecot's plugin, rfcdraft/ E.4); AUTH PLAIN after EHLO.
  std::string auth_user;
  std::string auth_password;
  std::string auth_password_file;
  bool json = false;
};

int run_check(const StokenConnectOptions& connect, const CheckOptions& check, std::ostream& out,
              std::ostream& err);

}  // namespace stokend::admin
