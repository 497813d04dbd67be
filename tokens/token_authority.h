// Mints, verifies and revokes the tokens of this server: the token
// authority. Temporary tokens are stateless (verified from their own text,
// the secret rings and a per-pair revocation mark); permanent tokens are
// also recorded in the token store, and one missing from the store is
// invalid.
//
// Verification, in this order (the first failure decides the verdict):
//   malformed     the text does not parse (token_format.h)
//   forged        unknown keyid (after looking at the secrets file again:
//                 another node may mint with a secret just distributed),
//                 or the MAC does not match (compared in constant time,
//                 CRYPTO_memcmp)
//   not_yet_valid created more than policy.clock_skew in the future
//   expired       now >= created + validity
//   revoked       temporary, created at or before the pair's revocation mark
//   unknown_permanent  permanent, not in the store (deleted = revoked)
//   wrong_pair    hash != pair_hash(remote, local) (only when a pair is given)
//
// Contract: thread-safe for verify/inspect (the rings are read-only while in
// use; the daemon refreshes them on the loop thread). mint_* and revoke write
// to the store and may block on its fsync: the daemon calls them on worker
// threads. Times are unix seconds from the clock given at construction.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

#include "tokens/secret_rings.h"
#include "tokens/token_store.h"

namespace stokend::tokens {

struct TokenPolicy {
  std::chrono::seconds temporary_validity{std::chrono::hours(24 * 7)};
  std::chrono::seconds permanent_validity{std::chrono::hours(24 * 365)};
  std::chrono::seconds clock_skew{std::chrono::hours(24)};
  // A permanent token used with less than this left is renewed (2.1.13).
  std::chrono::seconds renew_before{std::chrono::hours(24 * 30)};
};

enum class TokenVerdict {
  valid,
  malformed,
  forged,
  not_yet_valid,
  expired,
  revoked,
  unknown_permanent,
  wrong_pair,
};

std::string_view verdict_name(TokenVerdict verdict);  // "valid", "forged", ...

struct TokenCheck {
  TokenVerdict verdict = TokenVerdict::malformed;
  std::optional<TokenKind> kind;  // known once the MAC verified
  std::int64_t created = 0;
  std::int64_t expires = 0;
  std::string hash;        // the token's pair hash field
  std::string key_id;      // the token's keyid field
  std::string reason;      // for logs and stokenctl: why, in words
  bool renew_due = false;  // valid permanent token within policy.renew_before of expiry

  bool valid() const { return verdict == TokenVerdict::valid; }
};

class TokenAuthority {
 public:
  using Clock = std::function<std::int64_t()>;  // unix seconds

  TokenAuthority(const SecretRings& rings, TokenStore& store, TokenPolicy policy,
                 Clock clock = system_clock);
  static std::int64_t system_clock();

  // A new temporary token for the pair. Its created time is after the pair's
  // revocation mark, so a token minted right after REVSTOKEN is valid.
  std::string mint_temporary(std::string_view remote_address, std::string_view local_address);
  // The pair's newest permanent token with at least policy.renew_before
  // left (not due for renewal), or a new one (stored). Used for GENSTOKEN PERM, for the 2.1.13
  // exchange of a temporary token and for renewing a permanent one.
  std::string permanent_for(std::string_view remote_address, std::string_view local_address);
  // Always a new permanent token (stored); older ones of the pair stay valid
  // until they expire, so a Remote Client in flight is not cut off.
  std::string renew_permanent(std::string_view remote_address, std::string_view local_address);

  // Full check of a token for the pair (remote, local).
  TokenCheck verify(std::string_view token, std::string_view remote_address,
                    std::string_view local_address) const;
  // Every check but the pair: for AUTH STOKEN, before MAIL FROM names the
  // remote address; the session checks the pair with pair_matches() later.
  TokenCheck verify_unbound(std::string_view token) const;
  static bool pair_matches(const TokenCheck& check, std::string_view remote_address,
                           std::string_view local_address);

  // REVSTOKEN: deletes the pair's permanent tokens and sets its revocation
  // mark to now, killing every temporary token of the pair minted so far.
  void revoke(std::string_view remote_address, std::string_view local_address);

  const TokenPolicy& policy() const { return policy_; }
  std::int64_t now() const { return clock_(); }

 private:
  // The rings' secrets with their HMAC keys precomputed (token_authority.cc),
  // rebuilt when the rings' snapshot changes.
  struct MacKeys;
  std::shared_ptr<const MacKeys> mac_keys() const;
  // verify_unbound() without counting it (token_metrics.h): for the
  // authority's own checks of tokens it issued.
  TokenCheck check_unbound(std::string_view token) const;
  std::string mint(TokenKind kind, std::string_view remote_address, std::string_view local_address,
                   std::int64_t created) const;

  const SecretRings& rings_;
  TokenStore& store_;
  TokenPolicy policy_;
  Clock clock_;
  // Read and swapped with std::atomic_load/store: verify() runs on several
  // threads, and the first to see a new snapshot rebuilds the keys.
  mutable std::shared_ptr<const MacKeys> mac_keys_;
};

}  // namespace stokend::tokens
