// See xtext.h.
#include "message/xtext.h"

#include <cstdint>

namespace stokend::message {
namespace {

constexpr char upper_hex[] = "0123456789ABCDEF";

int hex_value(char c, bool upper_only) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  if (!upper_only && c >= 'a' && c <= 'f') return c - 'a' + 10;
  return -1;
}

bool is_printable_ascii(unsigned char c) { return c >= ' ' && c <= '~'; }

// RFC 6533 QCHAR, ASCII part: %x21-2a / %x2c-3c / %x3e-5b / %x5d-7e.
bool is_qchar(unsigned char c) { return c >= '!' && c <= '~' && c != '+' && c != '=' && c != '\\'; }

void append_utf8(std::string& out, std::uint32_t code_point) {
  if (code_point < 0x80) {
    out.push_back(static_cast<char>(code_point));
  } else if (code_point < 0x800) {
    out.push_back(static_cast<char>(0xc0 | (code_point >> 6)));
    out.push_back(static_cast<char>(0x80 | (code_point & 0x3f)));
  } else if (code_point < 0x10000) {
    out.push_back(static_cast<char>(0xe0 | (code_point >> 12)));
    out.push_back(static_cast<char>(0x80 | ((code_point >> 6) & 0x3f)));
    out.push_back(static_cast<char>(0x80 | (code_point & 0x3f)));
  } else {
    out.push_back(static_cast<char>(0xf0 | (code_point >> 18)));
    out.push_back(static_cast<char>(0x80 | ((code_point >> 12) & 0x3f)));
    out.push_back(static_cast<char>(0x80 | ((code_point >> 6) & 0x3f)));
    out.push_back(static_cast<char>(0x80 | (code_point & 0x3f)));
  }
}

// The length of the well-formed UTF-8 sequence at text[position] (RFC 3629
// §4: no overlong forms, no surrogates, nothing above U+10FFFF), or 0; the
// code point goes to code_point.
std::size_t utf8_sequence(std::string_view text, std::size_t position, std::uint32_t& code_point) {
  const auto byte = [&](std::size_t i) { return static_cast<unsigned char>(text[position + i]); };
  const unsigned char lead = byte(0);
  std::size_t length = 0;
  std::uint32_t minimum = 0;
  if (lead < 0x80) {
    code_point = lead;
    return 1;
  } else if ((lead & 0xe0) == 0xc0) {
    length = 2, minimum = 0x80, code_point = lead & 0x1f;
  } else if ((lead & 0xf0) == 0xe0) {
    length = 3, minimum = 0x800, code_point = lead & 0x0f;
  } else if ((lead & 0xf8) == 0xf0) {
    length = 4, minimum = 0x10000, code_point = lead & 0x07;
  } else {
    return 0;
  }
  if (text.size() - position < length) return 0;
  for (std::size_t i = 1; i < length; ++i) {
    if ((byte(i) & 0xc0) != 0x80) return 0;
    code_point = (code_point << 6) | (byte(i) & 0x3f);
  }
  if (code_point < minimum || code_point > 0x10ffff ||
      (code_point >= 0xd800 && code_point <= 0xdfff)) {
    return 0;
  }
  return length;
}

}  // namespace

std::string encode_xtext(std::string_view text) {
  std::string encoded;
  encoded.reserve(text.size());
  for (unsigned char c : text) {
    if (c >= '!' && c <= '~' && c != '+' && c != '=') {
      encoded.push_back(static_cast<char>(c));
    } else {
      encoded.push_back('+');
      encoded.push_back(upper_hex[c >> 4]);
      encoded.push_back(upper_hex[c & 0x0f]);
    }
  }
  return encoded;
}

std::optional<std::string> decode_xtext(std::string_view xtext) {
  std::string decoded;
  decoded.reserve(xtext.size());
  for (std::size_t i = 0; i < xtext.size(); ++i) {
    const unsigned char c = static_cast<unsigned char>(xtext[i]);
    if (c == '+') {
      // RFC 3461 §4: hexchar is "+" and two upper-case hex digits.
      if (xtext.size() - i < 3) return std::nullopt;
      const int high = hex_value(xtext[i + 1], true);
      const int low = hex_value(xtext[i + 2], true);
      if (high < 0 || low < 0) return std::nullopt;
      const auto value = static_cast<unsigned char>(high * 16 + low);
      if (!is_printable_ascii(value)) return std::nullopt;
      decoded.push_back(static_cast<char>(value));
      i += 2;
    } else if (c >= '!' && c <= '~' && c != '=') {
      decoded.push_back(static_cast<char>(c));
    } else {
      return std::nullopt;
    }
  }
  return decoded;
}

std::string encode_utf8_address_xtext(std::string_view utf8) {
  std::string encoded;
  for (std::size_t i = 0; i < utf8.size();) {
    std::uint32_t code_point = 0;
    std::size_t length = utf8_sequence(utf8, i, code_point);
    if (length == 0) {
      // Not UTF-8: the byte itself, so nothing is lost or smuggled.
      code_point = static_cast<unsigned char>(utf8[i]);
      length = 1;
    }
    if (code_point < 0x80 && is_qchar(static_cast<unsigned char>(code_point))) {
      encoded.push_back(static_cast<char>(code_point));
    } else {
      std::string hex;
      for (std::uint32_t rest = code_point; rest != 0 || hex.empty(); rest >>= 4) {
        hex.insert(hex.begin(), upper_hex[rest & 0x0f]);
      }
      encoded += "\\x{" + hex + "}";
    }
    i += length;
  }
  return encoded;
}

std::optional<std::string> decode_utf8_address_xtext(std::string_view text, bool allow_utf8) {
  std::string decoded;
  for (std::size_t i = 0; i < text.size();) {
    const unsigned char c = static_cast<unsigned char>(text[i]);
    if (c == '\\') {
      // EmbeddedUnicodeChar: "\x{" HEXPOINT "}", 1 to 6 hex digits (RFC 6533 §3).
      if (text.substr(i, 3) != "\\x{") return std::nullopt;
      std::size_t j = i + 3;
      std::uint32_t code_point = 0;
      std::size_t digits = 0;
      for (; j < text.size() && text[j] != '}'; ++j, ++digits) {
        const int value = hex_value(text[j], false);
        if (value < 0 || digits == 6) return std::nullopt;
        code_point = code_point * 16 + static_cast<std::uint32_t>(value);
      }
      if (j == text.size() || digits == 0) return std::nullopt;
      if (code_point > 0x10ffff || (code_point >= 0xd800 && code_point <= 0xdfff) ||
          code_point < 0x20 || code_point == 0x7f || (code_point >= 0x80 && code_point < 0xa0)) {
        return std::nullopt;
      }
      append_utf8(decoded, code_point);
      i = j + 1;
    } else if (c < 0x80) {
      if (!is_qchar(c)) return std::nullopt;
      decoded.push_back(static_cast<char>(c));
      ++i;
    } else {
      std::uint32_t code_point = 0;
      const std::size_t length = allow_utf8 ? utf8_sequence(text, i, code_point) : 0;
      if (length == 0 || code_point < 0xa0) return std::nullopt;
      decoded.append(text.substr(i, length));
      i += length;
    }
  }
  if (decoded.empty()) return std::nullopt;
  return decoded;
}

}  // namespace stokend::message
