// The MAC of submission tokens: HMAC-SHA-256 (RFC 2104) keyed with a
// 32-octet server secret, over the token's signed part (everything before
// "-secret:").
//
// HmacSha256Key absorbs the key once (the inner and outer padded key blocks),
// so that each MAC costs only the message's SHA-256 blocks plus one: token
// verification runs once per RCPT with STOKEN= and must stay cheap.
//
// The computation uses OpenSSL's SHA-256, which uses the CPU's SHA
// extensions where it has them; libsodium's SHA-256 (crypto_auth_hmacsha256)
// is portable C and about three times slower here (bench/token_verify.cc
// measures both). The MAC value is the same: hmac_sha256_reference() computes
// it with libsodium, and the tests check that the two agree.
//
// Contract: compute() and verify() are thread-safe on a shared key and never
// throw; verify() compares in constant time (CRYPTO_memcmp). The constructor
// throws std::runtime_error only if OpenSSL has no SHA-256 (a broken
// installation).
#pragma once

#include <array>
#include <cstdint>
#include <memory>
#include <string_view>

namespace stokend::tokens {

using MacKey = std::array<std::uint8_t, 32>;
using MacValue = std::array<std::uint8_t, 32>;

class HmacSha256Key {
 public:
  explicit HmacSha256Key(const MacKey& key);
  ~HmacSha256Key();
  HmacSha256Key(HmacSha256Key&&) noexcept;
  HmacSha256Key& operator=(HmacSha256Key&&) noexcept;
  HmacSha256Key(const HmacSha256Key&) = delete;
  HmacSha256Key& operator=(const HmacSha256Key&) = delete;

  MacValue compute(std::string_view message) const;
  // Whether mac is the MAC of message, compared in constant time.
  bool verify(std::string_view message, const MacValue& mac) const;

 private:
  struct State;  // OpenSSL digest contexts with the padded key absorbed
  std::unique_ptr<State> state_;
};

// The same MAC computed by libsodium's crypto_auth_hmacsha256, from scratch:
// the reference the fast path is checked against (tests, benchmark).
MacValue hmac_sha256_reference(const MacKey& key, std::string_view message);

}  // namespace stokend::tokens
