// See ascii.h.
#include "common/ascii.h"

#include <charconv>

namespace stokend {

std::string ascii_lowercase(std::string_view text) {
  std::string lowered(text);
  for (char& character : lowered) character = ascii_lower(character);
  return lowered;
}

std::string ascii_uppercase(std::string_view text) {
  std::string raised(text);
  for (char& character : raised) character = ascii_upper(character);
  return raised;
}

bool is_ascii(std::string_view text) {
  for (unsigned char c : text) {
    if (c >= 0x80) return false;
  }
  return true;
}

bool equals_ignoring_case(std::string_view left, std::string_view right) {
  if (left.size() != right.size()) return false;
  for (std::size_t index = 0; index < left.size(); ++index) {
    if (ascii_lower(left[index]) != ascii_lower(right[index])) return false;
  }
  return true;
}

bool starts_with_ignoring_case(std::string_view text, std::string_view prefix) {
  return text.size() >= prefix.size() &&
         equals_ignoring_case(text.substr(0, prefix.size()), prefix);
}

std::optional<std::uint64_t> parse_decimal(std::string_view text) {
  std::uint64_t number = 0;
  const auto [end, status] = std::from_chars(text.data(), text.data() + text.size(), number);
  if (text.empty() || status != std::errc() || end != text.data() + text.size()) {
    return std::nullopt;
  }
  return number;
}

bool is_domain_name(std::string_view name) {
  if (name.empty() || name.size() > 253) return false;
  std::size_t label_length = 0;
  for (std::size_t i = 0; i < name.size(); ++i) {
    const char c = name[i];
    if (c == '.') {
      if (label_length == 0) return false;
      label_length = 0;
      continue;
    }
    const bool allowed =
        (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-';
    if (!allowed || ++label_length > 63) return false;
  }
  return label_length > 0;
}

}  // namespace stokend
