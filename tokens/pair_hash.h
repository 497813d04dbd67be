// The address hashes of the token design: the pair hash bound into every
// token, SHA3-256(norm(remote) ":" norm(local)), and COI-From-Hash,
// SHA3-256(norm(address)) (COI client spec, contact storage messages).
//
// norm() lowercases the local part and the domain (ASCII letters only; UTF-8
// bytes are kept as they are), so that both ends of a pair compute the same
// hash whatever case a client used.
#pragma once

#include <array>
#include <cstdint>
#include <string>
#include <string_view>

namespace stokend::tokens {

using Sha3Digest = std::array<std::uint8_t, 32>;

std::string normalize_address(std::string_view address);
Sha3Digest sha3_256(std::string_view data);
Sha3Digest pair_hash(std::string_view remote_address, std::string_view local_address);
Sha3Digest coi_from_hash(std::string_view address);

// Base64 (RFC 4648 §4 alphabet) without '=' padding, as the token format uses.
std::string base64_unpadded(const Sha3Digest& digest);

}  // namespace stokend::tokens
