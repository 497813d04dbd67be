// See base64.h.
//
// General encoding and decoding use libsodium's constant-time codec (SASL
// responses carry passwords). decode_base64_32() is table-driven instead:
// libsodium's decoder costs more than the rest of a token's parsing, while
// what it decodes (a MAC or hash a client sent, a key from a file only its
// owner reads) gains nothing from constant time.
#include "common/base64.h"

#include <sodium.h>

namespace stokend {
namespace {

constexpr std::size_t decoded_size = 32;
constexpr std::size_t unpadded_length = 43;  // ceil(32 * 8 / 6)

// The 6-bit value of each base64 character (RFC 4648 §4), 0xff for others.
constexpr std::array<std::uint8_t, 256> decoding_table = [] {
  std::array<std::uint8_t, 256> table{};
  table.fill(0xff);
  constexpr std::string_view alphabet =
      "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  for (std::size_t i = 0; i < alphabet.size(); ++i) {
    table[static_cast<unsigned char>(alphabet[i])] = static_cast<std::uint8_t>(i);
  }
  return table;
}();

}  // namespace

std::string encode_base64(std::span<const std::uint8_t> data, Base64Padding padding) {
  const int variant = padding == Base64Padding::required
                          ? sodium_base64_VARIANT_ORIGINAL
                          : sodium_base64_VARIANT_ORIGINAL_NO_PADDING;
  std::string encoded(sodium_base64_encoded_len(data.size(), variant), '\0');
  sodium_bin2base64(encoded.data(), encoded.size(), data.data(), data.size(), variant);
  encoded.resize(encoded.size() - 1);  // the terminating NUL
  return encoded;
}

std::string encode_base64(std::string_view data, Base64Padding padding) {
  return encode_base64(std::span(reinterpret_cast<const std::uint8_t*>(data.data()), data.size()),
                       padding);
}

std::optional<std::string> decode_base64(std::string_view text) {
  if (text.empty()) return std::string{};
  std::string decoded(text.size() / 4 * 3 + 3, '\0');
  std::size_t decoded_length = 0;
  const char* end = nullptr;
  if (sodium_base642bin(reinterpret_cast<unsigned char*>(decoded.data()), decoded.size(),
                        text.data(), text.size(), nullptr, &decoded_length, &end,
                        sodium_base64_VARIANT_ORIGINAL) != 0 ||
      end != text.data() + text.size()) {
    return std::nullopt;
  }
  decoded.resize(decoded_length);
  return decoded;
}

std::optional<std::array<std::uint8_t, 32>> decode_base64_32(std::string_view text,
                                                             Base64Padding padding) {
  if (padding == Base64Padding::required) {
    if (text.size() != unpadded_length + 1 || text.back() != '=') return std::nullopt;
    text.remove_suffix(1);
  }
  if (text.size() != unpadded_length) return std::nullopt;
  std::array<std::uint8_t, decoded_size> decoded{};
  const auto value = [&](std::size_t index) -> std::uint32_t {
    return decoding_table[static_cast<unsigned char>(text[index])];
  };
  // Ten groups of four characters give 30 octets; the groups do not depend
  // on each other, so the processor works on several at once. Invalid
  // characters (0xff) are collected in `invalid` and checked once.
  std::uint32_t invalid = 0;
  for (std::size_t group = 0; group < 10; ++group) {
    const std::uint32_t a = value(4 * group);
    const std::uint32_t b = value(4 * group + 1);
    const std::uint32_t c = value(4 * group + 2);
    const std::uint32_t d = value(4 * group + 3);
    invalid |= a | b | c | d;
    const std::uint32_t bits = (a << 18) | (b << 12) | (c << 6) | d;
    decoded[3 * group] = static_cast<std::uint8_t>(bits >> 16);
    decoded[3 * group + 1] = static_cast<std::uint8_t>(bits >> 8);
    decoded[3 * group + 2] = static_cast<std::uint8_t>(bits);
  }
  // The last three characters carry 18 bits: two octets and two bits that
  // must be zero, or the same 32 octets would have four spellings.
  const std::uint32_t a = value(40);
  const std::uint32_t b = value(41);
  const std::uint32_t c = value(42);
  invalid |= a | b | c;
  const std::uint32_t bits = (a << 12) | (b << 6) | c;
  decoded[30] = static_cast<std::uint8_t>(bits >> 10);
  decoded[31] = static_cast<std::uint8_t>(bits >> 2);
  if ((invalid & 0x80) != 0 || (bits & 0x3) != 0) return std::nullopt;
  return decoded;
}

}  // namespace stokend
