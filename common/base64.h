// The one base64 (RFC 4648 §4 alphabet) of stokend: SASL responses (AUTH
// PLAIN, LOGIN, STOKEN), token fields, pair hashes, secrets.
//
// Contract: never throws. decode_base64() accepts only strict RFC 4648 with
// padding and nothing after the data ("" decodes to ""); decode_base64_32()
// accepts only exactly 32 octets in canonical base64 (no characters after
// the data, unused bits zero), padded or not as asked.
#pragma once

#include <array>
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>

namespace stokend {

enum class Base64Padding { forbidden, required };

std::string encode_base64(std::span<const std::uint8_t> data,
                          Base64Padding padding = Base64Padding::required);
std::string encode_base64(std::string_view data, Base64Padding padding = Base64Padding::required);

std::optional<std::string> decode_base64(std::string_view text);

// The fields of tokens and the secrets file: a SHA3-256 pair hash, an
// HMAC-SHA-256 value, a server secret. Faster than decode_base64() (see
// base64.cc), which matters for token verification.
std::optional<std::array<std::uint8_t, 32>> decode_base64_32(
    std::string_view text, Base64Padding padding = Base64Padding::forbidden);

}  // namespace stokend
