// Decoding of the SASL mechanisms the submission roles offer: PLAIN
// (RFC 4616) and LOGIN (draft-murchison-sasl-login), as carried by the SMTP
// AUTH command (RFC 4954).
//
// Contract: pure functions, no I/O. Base64 must be strict RFC 4648 with
// padding (common/base64.h); anything else is a decoding error.
#pragma once

#include <optional>
#include <string>
#include <string_view>

namespace stokend::server {

struct PlainCredentials {
  std::string authorization_identity;   // empty, or must equal the login
  std::string authentication_identity;  // the login (an address)
  std::string password;
};

// RFC 4616 §2: message = [authzid] NUL authcid NUL passwd. Each part is
// non-empty UTF-8 without NUL (authzid may be empty). base64 is the AUTH
// argument or continuation line; RFC 4954 §4: "=" stands for an empty
// response, which PLAIN cannot accept.
std::optional<PlainCredentials> decode_plain(std::string_view base64);

}  // namespace stokend::server
