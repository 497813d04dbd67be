// See pair_hash_fast.h.
#include "tokens/pair_hash_fast.h"

#include <openssl/evp.h>

#include <array>
#include <memory>
#include <stdexcept>

namespace stokend::tokens {
namespace {

struct DigestDeleter {
  void operator()(EVP_MD* digest) const { EVP_MD_free(digest); }
};
struct DigestContextDeleter {
  void operator()(EVP_MD_CTX* context) const { EVP_MD_CTX_free(context); }
};

const EVP_MD* sha3_256_algorithm() {
  static const std::unique_ptr<EVP_MD, DigestDeleter> algorithm(
      EVP_MD_fetch(nullptr, "SHA3-256", nullptr));
  if (!algorithm) throw std::runtime_error("SHA3-256 unavailable in OpenSSL");
  return algorithm.get();
}

// Collects the lowercased input (ASCII letters only, as normalize_address()
// does) and hands it to the digest a buffer at a time: one update for any
// pair of real addresses (at most 256 octets each, RFC 5321 §4.5.3.1.3).
class NormalizedInput {
 public:
  explicit NormalizedInput(EVP_MD_CTX* context) : context_(context) {}

  bool add(std::string_view text) {
    for (const char character : text) {
      if (used_ == buffer_.size() && !flush()) return false;
      buffer_[used_++] = character >= 'A' && character <= 'Z'
                             ? static_cast<char>(character - 'A' + 'a')
                             : character;
    }
    return true;
  }
  bool flush() {
    const bool ok = used_ == 0 || EVP_DigestUpdate(context_, buffer_.data(), used_) == 1;
    used_ = 0;
    return ok;
  }

 private:
  EVP_MD_CTX* context_;
  std::array<char, 520> buffer_;  // not zeroed: only the used part is read
  std::size_t used_ = 0;
};

}  // namespace

Sha3Digest pair_hash_fast(std::string_view remote_address, std::string_view local_address) {
  thread_local const std::unique_ptr<EVP_MD_CTX, DigestContextDeleter> context(EVP_MD_CTX_new());
  Sha3Digest digest{};
  unsigned int length = 0;
  if (!context || EVP_DigestInit_ex2(context.get(), sha3_256_algorithm(), nullptr) != 1) {
    throw std::runtime_error("SHA3-256 failed in OpenSSL");
  }
  NormalizedInput input(context.get());
  if (!input.add(remote_address) || !input.add(":") || !input.add(local_address) ||
      !input.flush() || EVP_DigestFinal_ex(context.get(), digest.data(), &length) != 1 ||
      length != digest.size()) {
    throw std::runtime_error("SHA3-256 failed in OpenSSL");
  }
  return digest;
}

}  // namespace stokend::tokens
