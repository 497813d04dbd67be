// The text formats of submission tokens (DESIGN.md "Token format").
//
// Named-field format, the one stokend emits (the format of Dovecot's COI
// plugin, so tokens look alike across servers):
//
//     1-created:<unix secs>-validity:<secs>-hash:<b64>[-<key>:<value>...]-secret:<b64>
//
// Fields are separated by '-'; base64 is RFC 4648 §4 without '=' padding.
// "secret" is the MAC over every octet before "-secret:" and is the last
// field. stokend adds one option, "keyid:<id>", naming the server secret
// that made the MAC, so that verification computes one MAC, not one per
// secret of the rings.
//
// Positional format, seen in the COI material and parsed only, to read tokens
// other servers issued (expiry and merge decisions):
//
//     1-<b64 32 bytes>-<b64 32 bytes>-<hex created>-<hex validity>
//
// Contract: pure functions, no I/O, never throw. Tokens travel as ESMTP
// parameter values (RFC 5321 §4.1.2 esmtp-value: octets 33-60 and 62-126),
// so a token holding any other octet, or longer than max_token_length, is
// refused by the parser with a specific error.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace stokend::tokens {

inline constexpr std::size_t max_token_length = 512;

struct TokenFields {
  std::int64_t created = 0;   // unix seconds, > 0
  std::int64_t validity = 0;  // seconds, > 0
  std::string hash;           // the pair hash, base64 unpadded (43 characters for SHA3-256)
  // Every other "key:value" field, in token order (stokend writes "keyid").
  std::vector<std::pair<std::string, std::string>> options;
  std::string secret;  // the MAC, base64 unpadded

  // The value of an option, or nullptr.
  const std::string* option(std::string_view key) const;
};

struct ParsedToken {
  TokenFields fields;
  // How many leading octets of the text the MAC covers: everything before
  // "-secret:".
  std::size_t signed_length = 0;
};

struct TokenParseResult {
  std::optional<ParsedToken> token;
  std::string error;  // when token is empty: what is wrong, e.g. "missing 'hash' field"
};

// Parses the named-field format. Version must be "1"; created, validity, hash
// and secret are required, each at most once; numbers are decimal without
// sign; "secret" must be the last field.
TokenParseResult parse_named_token(std::string_view text);

// Writes the named-field format without the secret: the octets the MAC
// covers. Fields in the order created, validity, hash, options.
std::string emit_signed_part(const TokenFields& fields);
// emit_signed_part(fields) + "-secret:" + fields.secret.
std::string emit_token(const TokenFields& fields);

struct PositionalToken {
  std::array<std::uint8_t, 32> first{};   // first 32-octet field (see coi-specs)
  std::array<std::uint8_t, 32> second{};  // second 32-octet field
  std::int64_t created = 0;
  std::int64_t validity = 0;
};

struct PositionalParseResult {
  std::optional<PositionalToken> token;
  std::string error;
};

PositionalParseResult parse_positional_token(std::string_view text);

// Created and validity of a token in either format, for expiry and merge
// decisions on tokens other servers issued; nullopt when neither parses.
struct TokenLifetime {
  std::int64_t created = 0;
  std::int64_t validity = 0;
  std::optional<std::string> hash;  // named format only
};
std::optional<TokenLifetime> token_lifetime(std::string_view text);

}  // namespace stokend::tokens
