// The named-field token format read in place: the fields as views into the
// token's text, for the verification path. parse_named_token()
// (token_format.h) is built on it and copies the fields out; verification
// reads the views directly and so allocates nothing for the token itself,
// since it runs once per RCPT with STOKEN= (bench/token_verify.cc).
//
// Internal to tokens/. Contract: scan_named_token() accepts exactly the
// texts parse_named_token() accepts, with the same error text; the views
// point into `text` and live as long as it does. Never throws.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace stokend::tokens {

struct NamedTokenScan {
  std::int64_t created = 0;
  std::int64_t validity = 0;
  std::string_view hash;
  std::string_view secret;
  // The value of stokend's "keyid" option, when present.
  std::optional<std::string_view> key_id;
  // Octets before "-secret:", the part the MAC covers.
  std::size_t signed_length = 0;
};

// Fills `scan` and returns an empty string, or returns what is wrong.
std::string scan_named_token(std::string_view text, NamedTokenScan& scan);

}  // namespace stokend::tokens
