// ASCII text helpers for protocol text: SMTP verbs and keywords (RFC 5321
// §2.4: case-insensitive), domain names (RFC 4343), header field names
// (RFC 5322 §1.2.2), configuration values.
//
// Contract: only the 26 ASCII letters change case; every other octet,
// including UTF-8 and NUL, compares and copies as itself. Independent of the
// C locale. parse_decimal() accepts only a whole unsigned decimal number
// (digits only, no sign, no space) that fits in 64 bits.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace stokend {

constexpr char ascii_lower(char c) {
  return c >= 'A' && c <= 'Z' ? static_cast<char>(c - 'A' + 'a') : c;
}
constexpr char ascii_upper(char c) {
  return c >= 'a' && c <= 'z' ? static_cast<char>(c - 'a' + 'A') : c;
}

std::string ascii_lowercase(std::string_view text);
std::string ascii_uppercase(std::string_view text);

bool equals_ignoring_case(std::string_view left, std::string_view right);
// Whether every octet is below 0x80 (US-ASCII).
bool is_ascii(std::string_view text);
bool starts_with_ignoring_case(std::string_view text, std::string_view prefix);

std::optional<std::uint64_t> parse_decimal(std::string_view text);

// A domain name as it may appear in EHLO or after '@' (RFC 5321 §4.1.2
// Domain, RFC 1123 §2.1 host names): dot-separated labels of letters, digits
// and hyphens, no label empty or longer than 63 octets, at most 253 octets.
bool is_domain_name(std::string_view name);

}  // namespace stokend
