// Reading the header section of an RFC 5322 message, and chat detection.
//
// Contract: parse_headers() reads header fields up to the first empty line
// (or the end of input), unfolding continuation lines. It never throws and
// tolerates malformed lines (they are skipped). Names compare
// case-insensitively.
#pragma once

#include <cstddef>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace stokend::message {

struct HeaderField {
  std::string name;   // as written
  std::string value;  // unfolded, leading/trailing whitespace trimmed
};

std::vector<HeaderField> parse_headers(std::string_view message);

// The message without any field of this name (case-insensitive), each with
// its continuation lines; everything else is kept byte for byte, the body
// untouched. Returns the message unchanged when it has no such field.
std::string remove_header_fields(std::string_view message, std::string_view name);

// The header section of a message: up to its first empty line (CRLF CRLF),
// and never more than max_header_section_scanned octets, so that a body
// is never searched and a message without an empty line costs a bounded
// scan. Real header sections are a few KiB.
inline constexpr std::size_t max_header_section_scanned = 256 * 1024;
std::string_view header_section(std::string_view message);

// How many fields of this name (case-insensitive) the header section of
// message has (header_section()'s bound applies).
std::size_t count_header_fields(std::string_view message, std::string_view name);

// First field with this name (case-insensitive), if any.
std::optional<std::string> find_header(const std::vector<HeaderField>& fields,
                                       std::string_view name);
// Every field with this name (case-insensitive), in order.
std::vector<std::string> find_all_headers(const std::vector<HeaderField>& fields,
                                          std::string_view name);

// Chat mail (DESIGN.md "Chat detection"): a Chat-Version header, or a
// Message-ID starting with "chat$" (inside the angle brackets), or a References
// header whose first id starts with "chat$".
bool is_chat_message(const std::vector<HeaderField>& fields);
bool is_chat_message(std::string_view message);

}  // namespace stokend::message
