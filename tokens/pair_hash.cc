// See pair_hash.h.
#include "tokens/pair_hash.h"

#include <openssl/evp.h>
#include <sodium.h>

#include <memory>
#include <stdexcept>

#include "common/ascii.h"
#include "common/base64.h"
#include "message/address.h"
#include "tokens/pair_hash_fast.h"

namespace stokend::tokens {

std::string normalize_address(std::string_view address) { return ascii_lowercase(address); }

Sha3Digest sha3_256(std::string_view data) {
  Sha3Digest digest{};
  unsigned int length = 0;
  if (EVP_Digest(data.data(), data.size(), digest.data(), &length, EVP_sha3_256(), nullptr) != 1 ||
      length != digest.size()) {
    throw std::runtime_error("SHA3-256 unavailable in OpenSSL");
  }
  return digest;
}

Sha3Digest pair_hash(std::string_view remote_address, std::string_view local_address) {
  // Every token verification hashes a pair: the allocation-free version.
  return pair_hash_fast(remote_address, local_address);
}

Sha3Digest coi_from_hash(std::string_view address) { return sha3_256(normalize_address(address)); }

std::string base64_unpadded(const Sha3Digest& digest) {
  return encode_base64(digest, Base64Padding::forbidden);
}

}  // namespace stokend::tokens
