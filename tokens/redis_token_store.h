// RedisTokenStore: the TokenStore shared by several stokend nodes, in one
// Redis server (config: tokens.store.backend redis). A permanent token
// issued by one node verifies on every other, and a revocation on one is
// in force on all as soon as its write returns (without the verification
// cache) or within a pub/sub delivery after it (with it, below).
//
// Key layout (P is Options::key_prefix, "stokend:" by default; addresses are
// normalised, times unix seconds). Every key carries an expiry (EXPIREAT)
// so Redis forgets an expired token by itself; remove_expired() only tidies
// the index sets.
//
//   P issued:TOKEN      hash  local remote pair created expires    EXPIREAT expires
//   P pair:HASH         zset  TOKEN scored by created               EXPIREAT latest expires
//   P local:LOCAL       set   TOKEN (issued to LOCAL)               EXPIREAT latest expires
//   P mark:HASH         string revoked_through                      EXPIREAT revoked_through
//                                                                     + Options::mark_lifetime
//   P wallet:N:LOCAL:REMOTE  hash  local remote token pair created
//                              expires permanent source            EXPIREAT expires
//                       (N: the length of LOCAL, so no address can
//                        make two pairs share a key)
//   P wallets:LOCAL     set   REMOTE (LOCAL's wallet entries)      EXPIREAT latest expires
//   P secret:ID         string fingerprint of the secret ID         EX 2 years
//                       (claim_secret_fingerprints)
//   P changes           pub/sub channel: the pair hash of every write that
//                       can change a verification (an issued token added or
//                       deleted, a revocation mark moved), published by the
//                       write's own script
//
// Verification cache (Options::verification_cache, on in the daemon): the
// two reads a verification makes, revocation_mark() and find_issued(), are
// answered from a VerificationCache (verification_cache.h) that a
// subscriber of P changes keeps current (redis_invalidations.h). Another
// node's revocation reaches this node's cache within a pub/sub delivery
// (bench/README.md: revocation propagation); while the subscription is down
// or silent the cache is bypassed, so an outage of the channel costs speed,
// never a stale verdict beyond Options::silence_limit. This node's own
// writes drop the pair's entries before the call returns. Every other read
// (wallets, listings, newest_issued for minting) always asks Redis.
//
// Every write is one Lua script (EVAL), so it is atomic, and the rules of
// the interface hold across nodes: a revocation mark only moves forward,
// the wallet keeps the newer token, delete_wallet only deletes the token it
// names. Index sets may briefly name a key that expired; readers skip such
// members and remove_expired() drops them.
//
// Durability ("when a write returns, it survives a crash"): as far as Redis
// allows, which depends on its configuration (README "Several nodes: tokens
// on Redis"): appendonly yes with appendfsync always makes each write
// fsynced before Redis answers; appendfsync everysec may lose the last
// second of writes on a power cut (not on a crash of redis-server alone).
// With Options::wait_replicas > 0 every write is followed by WAIT: the call
// fails (TokenStoreError) unless that many replicas acknowledged it within
// Options::wait_timeout, so losing the primary loses nothing acknowledged.
//
// Not Redis Cluster: the scripts touch keys they find in index sets, which
// a cluster cannot route. One primary, optionally with replicas (Sentinel
// failover behind a fixed address works).
//
// Contract (token_store.h): thread-safe; every network step has a deadline
// and an outage makes calls throw TokenStoreError at once during the
// back-off (redis_connection.h); errors name the endpoint, never the
// password or a token.
#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "tokens/redis_connection.h"
#include "tokens/redis_invalidations.h"
#include "tokens/token_store.h"
#include "tokens/verification_cache.h"

namespace stokend::tokens {

class RedisTokenStore : public TokenStore {
 public:
  struct Options {
    RedisConnections::Options connection;
    std::string key_prefix = "stokend:";
    // How long a revocation mark outlives its time: longer than any
    // temporary token can be valid (temporary validity + clock skew).
    std::chrono::seconds mark_lifetime{std::chrono::hours(24 * 8)};
    int wait_replicas = 0;  // WAIT for this many replicas after each write
    std::chrono::milliseconds wait_timeout{1000};
    // Cache the reads of verification, kept current over P changes (a
    // thread per store with a connection of its own). Off for short-lived
    // stores (stokenctl): their writes are announced all the same.
    bool verification_cache = false;
    VerificationCache::Options cache;
    std::chrono::milliseconds ping_interval{200};   // on the subscriber connection
    std::chrono::milliseconds silence_limit{1000};  // then the cache is bypassed
  };

  // Connects lazily: constructing never waits for the network, so a node
  // starts while Redis is down (its token calls fail until Redis is back;
  // the subscriber, when there is one, connects on its own thread).
  explicit RedisTokenStore(Options options);
  ~RedisTokenStore() override;

  // The verification cache, null when Options::verification_cache is off
  // (for tests and the benchmark: whether it is live, its size).
  const VerificationCache* verification_cache() const { return cache_.get(); }

  // PING; throws TokenStoreError when Redis cannot be reached.
  void ping();
  // Redis's own view of its durability ("aof_enabled:1" ...), for the start
  // log line: empty when Redis cannot be asked.
  std::string persistence_summary();
  std::string describe() const { return connections_.describe(); }

  // Nodes sharing this store must share their secrets too. Records each
  // secret's fingerprint (id -> fingerprint, never the key) under
  // P secret:ID unless another node recorded one already, and returns the
  // ids whose recorded fingerprint differs: a node with such a secret mints
  // tokens the others refuse. Throws TokenStoreError.
  std::vector<std::string> claim_secret_fingerprints(
      const std::vector<std::pair<std::string, std::string>>& fingerprints);

  void add_issued(const IssuedToken& token) override;
  std::optional<IssuedToken> find_issued(std::string_view token) override;
  std::optional<IssuedToken> newest_issued(std::string_view pair_hash, std::int64_t now) override;
  std::size_t delete_issued(std::string_view pair_hash) override;
  std::vector<IssuedToken> list_issued(std::string_view local_address) override;

  void set_revocation_mark(std::string_view pair_hash, std::int64_t revoked_through) override;
  std::optional<std::int64_t> revocation_mark(std::string_view pair_hash) override;

  bool put_wallet(const WalletToken& token) override;
  std::optional<WalletToken> find_wallet(std::string_view local_address,
                                         std::string_view remote_address) override;
  bool delete_wallet(std::string_view local_address, std::string_view remote_address,
                     std::string_view token) override;
  std::vector<WalletToken> list_wallet(std::string_view local_address) override;

  std::size_t remove_expired(std::int64_t now, std::int64_t oldest_mark_worth_keeping) override;

 private:
  std::string key(std::string_view kind, std::string_view name) const;
  std::string wallet_key(std::string_view local, std::string_view remote) const;
  RedisConnections::Reply run(const std::vector<std::string_view>& words, const char* what);
  // A write, followed on the same connection by WAIT for
  // Options::wait_replicas when set; throws when too few acknowledge.
  RedisConnections::Reply write(const std::vector<std::string_view>& words, const char* what);
  std::vector<std::string> scan(std::string_view pattern, const char* what);
  std::vector<IssuedToken> fetch_issued(const std::vector<std::string>& tokens);
  std::vector<WalletToken> fetch_wallet(const std::vector<std::string>& keys);
  std::optional<IssuedToken> read_issued(std::string_view token);
  std::optional<std::int64_t> read_mark(std::string_view pair_hash);
  // Drops the pair from this node's cache: after each write touching it,
  // whether the write succeeded or threw (it may have happened).
  void forget_pair(std::string_view pair_hash);
  void count_cache_read() const;  // a miss or a bypass (token_metrics.h)
  struct ForgetPair {             // forget_pair() when the write's scope ends, thrown or not
    RedisTokenStore* store;
    std::string_view pair_hash;
    ~ForgetPair() { store->forget_pair(pair_hash); }
  };

  Options options_;
  RedisConnections connections_;
  std::string channel_;  // P changes
  // The listener feeds the cache: declared after it, so destroyed first.
  std::unique_ptr<VerificationCache> cache_;
  std::unique_ptr<RedisInvalidations> invalidations_;
};

}  // namespace stokend::tokens
