// The lines of Dovecot's two auth protocols, as pure functions: the auth
// client protocol (the one Postfix's smtpd_sasl_type = dovecot speaks:
// Dovecot's doc "Authentication Protocol", Postfix xsasl_dovecot_server.c)
// and the auth master protocol of the auth-userdb socket (`doveadm user`).
//
// Both are lines of TAB-separated fields ending in LF. Inside a field,
// Dovecot's tab-escaping (str_tabescape) writes \001 as 0x01 '1', TAB as
// 0x01 't', CR as 0x01 'r', LF as 0x01 'n' and NUL as 0x01 '0'.
//
// The auth client protocol: the server opens with VERSION 1 x, one MECH
// line per mechanism (name and flags), SPID, CUID, COOKIE and DONE; the
// client sends VERSION 1 x and CPID. Then per request: client AUTH id mech
// params [resp=base64]; server CONT id base64, OK id params (user=...) or
// FAIL id params (reason=..., temp); client CONT id base64 after a challenge.
//
// The auth master protocol: the server opens with VERSION 1 x and SPID;
// the client sends VERSION 1 x, then USER id name service=smtp; the server
// answers USER id name fields..., NOTFOUND id, or FAIL id reason=....
//
// Contract: never throws; a line that does not parse gives a result with
// an error text saying what is wrong (never echoing a credential: the
// parsers only see the server's lines). A CONT challenge is checked to be
// strict base64 (common/base64.h), so that it can be sent to an SMTP
// client as a 334 line as it is; a user name to be a printable login.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace stokend::auth {

// The fields of one line, each unescaped. An empty line has one empty field.
std::vector<std::string> split_fields(std::string_view line);
// One field escaped for sending (tab-escaping as above).
std::string escape_field(std::string_view field);

// ---- the auth client protocol ------------------------------------------

struct AuthServerLine {
  enum class Kind { version, mech, spid, cuid, cookie, done, ok, cont, fail, other };
  Kind kind = Kind::other;
  unsigned major_version = 0;      // version
  std::string mechanism;           // mech: uppercase name
  std::vector<std::string> flags;  // mech: plaintext, anonymous, private...
  std::uint32_t id = 0;            // ok, cont, fail
  std::string challenge;           // cont: base64 (may be empty)
  std::string user;                // ok: user= (never empty); fail: user= if given
  bool temporary = false;          // fail: "temp", Dovecot could not check now
  std::string reason;              // fail: reason= (meant for the client)
};

struct AuthServerParse {
  std::optional<AuthServerLine> line;
  std::string error;  // when line is empty
};

// One line from the auth client socket, without its LF. Unknown commands
// (Dovecot may add some) parse as Kind::other.
AuthServerParse parse_auth_server_line(std::string_view line);

// Whether a mechanism the server lists can be relayed over SMTP AUTH's
// text exchanges: not "private" (for Dovecot's own use), not anonymous (no
// login at all), not EXTERNAL (it would need our TLS client certificate
// context) and not one that needs a channel binding (-PLUS).
bool relayable_mechanism(const AuthServerLine& mech);

// ---- the auth master (userdb) protocol ---------------------------------

struct UserdbLine {
  enum class Kind { version, spid, user, notfound, fail, other };
  Kind kind = Kind::other;
  unsigned major_version = 0;
  std::uint32_t id = 0;  // user, notfound, fail
  std::string user;      // user: the name Dovecot knows the user by
  // user: the userdb fields (uid=, home=, and any extra field).
  std::vector<std::pair<std::string, std::string>> fields;
  std::string reason;  // fail: reason=
};

struct UserdbParse {
  std::optional<UserdbLine> line;
  std::string error;
};

UserdbParse parse_userdb_line(std::string_view line);

}  // namespace stokend::auth
