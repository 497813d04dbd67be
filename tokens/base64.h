// Decoding the base64 fields of tokens and of the secrets file: RFC 4648 §4
// alphabet, 32 octets (a SHA3-256 pair hash, an HMAC-SHA-256 value, a server
// secret). Encoding is base64_unpadded() in pair_hash.h.
//
// Contract: never throws; refuses anything but exactly 32 octets in
// canonical base64 (no characters after the data, unused bits zero).
#pragma once

#include <array>
#include <cstdint>
#include <optional>
#include <string_view>

namespace stokend::tokens {

enum class Base64Padding { forbidden, required };

std::optional<std::array<std::uint8_t, 32>> decode_base64_32(
    std::string_view text, Base64Padding padding = Base64Padding::forbidden);

}  // namespace stokend::tokens
