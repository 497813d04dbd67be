// Parsing and writing the token formats of token_format.h.
//
// The parsers are strict where leniency would give one token two spellings
// (numbers without sign or leading zeros, each field at most once), so that a
// token stokend parses and writes back is the same text, and lenient where
// other servers may differ (option names and values, the hash's encoding).
// Times are bounded to year 9999 so that created + validity never overflows
// and every time has an ISO 8601 form.
#include "tokens/token_format.h"

#include <algorithm>
#include <charconv>
#include <cstdio>
#include <cstring>

#include "common/base64.h"
#include "tokens/token_scan.h"

namespace stokend::tokens {
namespace {

// 9999-12-31T23:59:59Z: the largest created or validity a token may carry.
constexpr std::int64_t max_token_time = 253402300799;

constexpr std::string_view secret_key = "secret";
constexpr std::string_view key_id_key = "keyid";

// RFC 5321 §4.1.2 esmtp-value: %d33-60 / %d62-126.
constexpr bool allowed_octet(unsigned char octet) {
  return octet >= 33 && octet <= 126 && octet != '=';
}

// Whether every octet is allowed, eight at a time ("SWAR": bytewise tests
// on a 64-bit word, from Bit Twiddling Hacks, hasless / hasmore / haszero,
// which are exact for "some byte is"): this runs over every octet of every
// token verified, and a loop over single octets cost as much as a quarter
// of a verification.
bool all_octets_allowed(std::string_view text) {
  constexpr std::uint64_t ones = 0x0101010101010101;
  constexpr std::uint64_t high_bits = 0x8080808080808080;
  std::uint64_t bad = 0;
  std::size_t i = 0;
  for (; i + 8 <= text.size(); i += 8) {
    std::uint64_t word = 0;
    std::memcpy(&word, text.data() + i, sizeof word);
    bad |= (word - ones * 33) & ~word & high_bits;            // some octet < 33
    bad |= ((word + ones * (127 - 126)) | word) & high_bits;  // some octet > 126
    const std::uint64_t equals = word ^ (ones * '=');
    bad |= (equals - ones) & ~equals & high_bits;  // some octet == '='
  }
  for (; i < text.size(); ++i) bad |= !allowed_octet(static_cast<unsigned char>(text[i]));
  return bad == 0;
}

std::string describe_octet(unsigned char octet) {
  if (octet >= 33 && octet <= 126) return std::string("'") + static_cast<char>(octet) + "'";
  std::array<char, 8> hex{};
  std::snprintf(hex.data(), hex.size(), "0x%02x", octet);
  return hex.data();
}

// Why the text cannot be a token of either format, or empty when the
// length and every octet are acceptable.
std::string check_octets(std::string_view text) {
  if (text.empty()) return "empty token";
  if (text.size() > max_token_length) {
    return "token is " + std::to_string(text.size()) + " octets long, more than " +
           std::to_string(max_token_length);
  }
  if (all_octets_allowed(text)) return {};
  for (std::size_t i = 0;; ++i) {
    const auto octet = static_cast<unsigned char>(text[i]);
    if (!allowed_octet(octet)) {
      return "octet " + describe_octet(octet) + " at position " + std::to_string(i + 1) +
             " is not allowed in a token";
    }
  }
}

// Shortens a field for an error message: the text is at most 512 octets,
// but a message quoting all of it is unreadable.
std::string quoted(std::string_view field) {
  constexpr std::size_t shown = 40;
  if (field.size() <= shown) return "'" + std::string(field) + "'";
  return "'" + std::string(field.substr(0, shown)) + "...'";
}

// A decimal number of seconds: digits only, no leading zero, 1..max_token_time.
std::optional<std::int64_t> parse_decimal_time(std::string_view text) {
  if (text.empty() || text.size() > 12 || text[0] == '0') return std::nullopt;
  std::int64_t value = 0;
  const auto [end, status] = std::from_chars(text.data(), text.data() + text.size(), value);
  if (status != std::errc() || end != text.data() + text.size()) return std::nullopt;
  if (value <= 0 || value > max_token_time) return std::nullopt;
  return value;
}

// A hexadecimal number of seconds (positional format): 1-16 hex digits,
// either case, 1..max_token_time.
std::optional<std::int64_t> parse_hex_time(std::string_view text) {
  if (text.empty() || text.size() > 16) return std::nullopt;
  std::uint64_t value = 0;
  for (const char digit : text) {
    int nibble = 0;
    if (digit >= '0' && digit <= '9') {
      nibble = digit - '0';
    } else if (digit >= 'a' && digit <= 'f') {
      nibble = digit - 'a' + 10;
    } else if (digit >= 'A' && digit <= 'F') {
      nibble = digit - 'A' + 10;
    } else {
      return std::nullopt;
    }
    value = value * 16 + static_cast<std::uint64_t>(nibble);
  }
  if (value == 0 || value > static_cast<std::uint64_t>(max_token_time)) return std::nullopt;
  return static_cast<std::int64_t>(value);
}

std::vector<std::string_view> split_fields(std::string_view text) {
  std::vector<std::string_view> fields;
  std::size_t start = 0;
  while (true) {
    const std::size_t dash = text.find('-', start);
    if (dash == std::string_view::npos) {
      fields.push_back(text.substr(start));
      return fields;
    }
    fields.push_back(text.substr(start, dash - start));
    start = dash + 1;
  }
}

// Whether `before` (the text up to a field) has a field named key. Every
// field but the version starts after a '-', and no field holds one, so
// "-key:" found anywhere is a field of that name. Searching the text again
// costs nothing for stokend's tokens, which have one option, and keeps the
// scan free of allocation.
bool has_option_field(std::string_view before, std::string_view key) {
  for (std::size_t found = before.find(key); found != std::string_view::npos;
       found = before.find(key, found + 1)) {
    const std::size_t after = found + key.size();
    if (found > 0 && before[found - 1] == '-' && after < before.size() && before[after] == ':') {
      return true;
    }
  }
  return false;
}

std::string ordinal(std::size_t index) {
  return "field " + std::to_string(index + 1);  // 1-based, the version is field 1
}

PositionalParseResult positional_error(std::string error) {
  return PositionalParseResult{std::nullopt, error};
}

void append_number(std::string& text, std::int64_t number) {
  std::array<char, 24> digits{};
  const auto [end, status] = std::to_chars(digits.data(), digits.data() + digits.size(), number);
  text.append(digits.data(), end);
}

}  // namespace

const std::string* TokenFields::option(std::string_view key) const {
  for (const auto& [name, value] : options) {
    if (name == key) return &value;
  }
  return nullptr;
}

std::string scan_named_token(std::string_view text, NamedTokenScan& scan) {
  if (std::string error = check_octets(text); !error.empty()) return error;
  std::size_t dash = text.find('-');
  const std::string_view version = text.substr(0, dash);
  if (version != "1") {
    if (version.find(':') != std::string_view::npos) return "missing version";
    return "unsupported version " + quoted(version) + " (expected '1')";
  }

  bool has_created = false;
  bool has_validity = false;
  bool has_hash = false;
  bool has_secret = false;
  for (std::size_t index = 1; dash != std::string_view::npos; ++index) {
    const std::size_t field_dash = dash;  // the '-' before this field
    const std::size_t start = dash + 1;
    dash = text.find('-', start);
    const std::string_view field =
        text.substr(start, dash == std::string_view::npos ? std::string_view::npos : dash - start);
    if (field.empty()) return "empty " + ordinal(index);
    const std::size_t colon = field.find(':');
    if (colon == std::string_view::npos)
      return ordinal(index) + " " + quoted(field) + " has no ':'";
    const std::string_view key = field.substr(0, colon);
    const std::string_view value = field.substr(colon + 1);
    if (key.empty()) return ordinal(index) + " " + quoted(field) + " has no name";
    const auto duplicate = [key] { return "duplicate " + quoted(key) + " field"; };

    if (key == secret_key) {
      if (dash != std::string_view::npos) return "'secret' must be the last field";
      if (value.empty()) return "empty 'secret' field";
      scan.secret = value;
      scan.signed_length = field_dash;
      has_secret = true;
    } else if (key == "created" || key == "validity") {
      bool& seen = key == "created" ? has_created : has_validity;
      if (seen) return duplicate();
      const auto number = parse_decimal_time(value);
      if (!number) {
        return "invalid " + quoted(key) + " value " + quoted(value) +
               " (expected seconds in decimal, 1-" + std::to_string(max_token_time) +
               ", no leading zero)";
      }
      (key == "created" ? scan.created : scan.validity) = *number;
      seen = true;
    } else if (key == "hash") {
      if (has_hash) return duplicate();
      if (value.empty()) return "empty 'hash' field";
      scan.hash = value;
      has_hash = true;
    } else {
      if (has_option_field(text.substr(0, field_dash), key)) return duplicate();
      if (key == key_id_key) scan.key_id = value;
    }
  }
  if (!has_created) return "missing 'created' field";
  if (!has_validity) return "missing 'validity' field";
  if (!has_hash) return "missing 'hash' field";
  if (!has_secret) return "missing 'secret' field";
  return {};
}

TokenParseResult parse_named_token(std::string_view text) {
  NamedTokenScan scan;
  if (std::string error = scan_named_token(text, scan); !error.empty()) {
    return TokenParseResult{std::nullopt, std::move(error)};
  }
  ParsedToken parsed;
  parsed.signed_length = scan.signed_length;
  TokenFields& fields = parsed.fields;
  fields.created = scan.created;
  fields.validity = scan.validity;
  fields.hash = scan.hash;
  fields.secret = scan.secret;
  // The options, in order: every field but the version and the four known.
  std::size_t start = text.find('-') + 1;
  while (start < scan.signed_length) {
    std::size_t end = text.find('-', start);
    const std::string_view field = text.substr(start, end - start);
    const std::size_t colon = field.find(':');
    const std::string_view key = field.substr(0, colon);
    if (key != "created" && key != "validity" && key != "hash") {
      fields.options.emplace_back(key, field.substr(colon + 1));
    }
    start = end + 1;
  }
  return TokenParseResult{std::move(parsed), {}};
}

std::string emit_signed_part(const TokenFields& fields) {
  std::string text;
  text.reserve(128);
  text += "1-created:";
  append_number(text, fields.created);
  text += "-validity:";
  append_number(text, fields.validity);
  text += "-hash:";
  text += fields.hash;
  for (const auto& [key, value] : fields.options) {
    text += '-';
    text += key;
    text += ':';
    text += value;
  }
  return text;
}

std::string emit_token(const TokenFields& fields) {
  std::string text = emit_signed_part(fields);
  text += "-secret:";
  text += fields.secret;
  return text;
}

PositionalParseResult parse_positional_token(std::string_view text) {
  if (std::string error = check_octets(text); !error.empty()) return positional_error(error);
  const std::vector<std::string_view> fields = split_fields(text);
  if (fields.size() != 5) {
    return positional_error("expected 5 fields separated by '-', got " +
                            std::to_string(fields.size()));
  }
  if (fields[0] != "1") {
    return positional_error("unsupported version " + quoted(fields[0]) + " (expected '1')");
  }
  PositionalToken token;
  for (std::size_t index : {1, 2}) {
    const auto decoded = decode_base64_32(fields[index]);
    if (!decoded) {
      return positional_error(ordinal(index) + " " + quoted(fields[index]) +
                              " is not 32 octets in base64 without padding");
    }
    (index == 1 ? token.first : token.second) = *decoded;
  }
  for (std::size_t index : {3, 4}) {
    const auto number = parse_hex_time(fields[index]);
    if (!number) {
      return positional_error(ordinal(index) + " " + quoted(fields[index]) +
                              " is not seconds in hexadecimal (1-" +
                              std::to_string(max_token_time) + ")");
    }
    (index == 3 ? token.created : token.validity) = *number;
  }
  return PositionalParseResult{token, {}};
}

std::optional<TokenLifetime> token_lifetime(std::string_view text) {
  if (const auto named = parse_named_token(text); named.token) {
    const TokenFields& fields = named.token->fields;
    return TokenLifetime{fields.created, fields.validity, fields.hash};
  }
  if (const auto positional = parse_positional_token(text); positional.token) {
    return TokenLifetime{positional.token->created, positional.token->validity, std::nullopt};
  }
  return std::nullopt;
}

}  // namespace stokend::tokens
