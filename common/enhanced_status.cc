// See enhanced_status.h.
#include "common/enhanced_status.h"

#include <string_view>

namespace stokend {
namespace {

bool is_digit(char c) { return c >= '0' && c <= '9'; }

// RFC 3463 §2: status-code = class "." subject "." detail, class 2, 4 or 5,
// subject and detail one to three digits.
std::size_t enhanced_code_length(std::string_view text) {
  std::size_t position = 0;
  if (text.empty() || (text[0] != '2' && text[0] != '4' && text[0] != '5')) return 0;
  position = 1;
  for (int part = 0; part < 2; ++part) {
    if (position >= text.size() || text[position] != '.') return 0;
    ++position;
    std::size_t digits = 0;
    while (position < text.size() && is_digit(text[position]) && digits < 4) {
      ++position;
      ++digits;
    }
    if (digits == 0 || digits > 3) return 0;
  }
  if (position < text.size() && text[position] != ' ') return 0;
  return position;
}

}  // namespace

std::string take_enhanced_code(int reply_code, std::string& text) {
  std::size_t length = enhanced_code_length(text);
  if (length == 0 || text[0] - '0' != reply_code / 100) return {};
  std::string code = text.substr(0, length);
  text.erase(0, length < text.size() ? length + 1 : length);
  return code;
}

}  // namespace stokend
