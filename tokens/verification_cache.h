// VerificationCache: a node's memory of what token verification read from a
// shared store (revocation marks by pair hash, issued tokens by their text,
// found or not), kept correct by invalidations the store's other writers
// announce (redis_token_store.h: each write that can change a verdict
// publishes the pair hash it touched; redis_invalidations.h delivers them).
//
// Why: a verification that asks Redis costs a round trip (about 35 µs on a
// unix socket, bench/token_verify.cc), thirty times the rest of the check.
// Answered from here it costs a hash lookup, as with the SQLite store.
//
// Freshness rules, each one a reason the cache may be wrong and the rule
// that bounds it:
//   - Another node's write: its invalidation arrives over pub/sub, usually
//     within a millisecond, and drops the pair's entries.
//   - A lost invalidation (the subscription broke, Redis restarted, the
//     network went quiet): the listener calls set_stale(), and until it has
//     resubscribed and called set_live() (which empties the cache) every
//     lookup bypasses it and nothing is added. So the cache only answers
//     while every write since the entry was read would have reached it.
//   - A read racing with an invalidation: a lookup notes sequence() before
//     it reads the store and insert_*() drops its result when any
//     invalidation, flush or change of liveness happened meanwhile, so an
//     old value read before a revocation never lands after it.
//   - Anything else (a bug, a key expired by Redis): every entry is
//     forgotten after Options::max_age.
// Ages are read from CLOCK_MONOTONIC_COARSE (a few milliseconds'
// resolution; each entry's deadline is set one tick early, so none outlives
// max_age): the precise clock cost a third of a cached lookup
// (bench/README.md, "The cached lookup made cheaper"), and a bound of
// minutes needs no nanoseconds.
// A full cache (Options::max_entries) is emptied and refills on demand.
//
// Contract: thread-safe (one mutex; the liveness flag is atomic so that a
// stale cache costs no lock). Starts stale: nothing is cached until
// set_live(). Lookups return nullopt for "not cached" and a value for "cached"
// (which may itself say "no mark" / "not stored").
#pragma once

#include <atomic>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "tokens/token_store.h"

namespace stokend::tokens {

class VerificationCache {
 public:
  struct Options {
    std::size_t max_entries = 100000;
    std::chrono::milliseconds max_age{std::chrono::minutes(10)};
  };
  using Sequence = std::uint64_t;
  using Mark = std::optional<std::int64_t>;   // nullopt: the pair has no mark
  using Issued = std::optional<IssuedToken>;  // nullopt: not stored

  explicit VerificationCache(Options options);

  bool live() const { return live_.load(std::memory_order_acquire); }
  // Subscribed again: forget everything (invalidations may have been missed
  // while stale) and answer from the cache from now on.
  void set_live();
  // The invalidations may be missed from now on: bypass the cache.
  void set_stale();
  // A write touched this pair (its mark or its issued tokens).
  void invalidate(std::string_view pair_hash);
  // Writes touched many pairs (the periodic removal of expired rows).
  void forget_everything();

  Sequence sequence() const;

  std::optional<Mark> mark(std::string_view pair_hash) const;
  std::optional<Issued> issued(std::string_view token) const;
  // `pair_hash`: the pair the token belongs to (the row's for a stored
  // token, the token's own hash field for one not stored), so that an
  // invalidation of the pair drops the entry. Ignored unless live and
  // nothing changed since `read_at`.
  void insert_mark(Sequence read_at, std::string_view pair_hash, Mark value);
  void insert_issued(Sequence read_at, std::string_view token, std::string_view pair_hash,
                     Issued value);

  std::size_t size() const;

 private:
  // CLOCK_MONOTONIC_COARSE, as a steady_clock time point.
  struct Clock {
    using time_point = std::chrono::steady_clock::time_point;
    static time_point now();
    static std::chrono::nanoseconds resolution();
  };
  template <typename Value>
  struct Entry {
    Value value;
    Clock::time_point until;
  };
  struct TextHash {
    using is_transparent = void;
    std::size_t operator()(std::string_view text) const {
      return std::hash<std::string_view>{}(text);
    }
  };
  template <typename Value>
  using TextMap = std::unordered_map<std::string, Value, TextHash, std::equal_to<>>;

  bool accepts(Sequence read_at) const;  // mutex_ held
  Clock::time_point deadline() const;    // for an entry added now
  void make_room();                      // mutex_ held
  void forget_all();                     // mutex_ held

  Options options_;
  std::chrono::nanoseconds lifetime_;  // max_age less one tick of Clock
  std::atomic<bool> live_{false};
  mutable std::mutex mutex_;
  Sequence sequence_ = 0;
  TextMap<Entry<Mark>> marks_;                     // by pair hash
  TextMap<Entry<Issued>> issued_;                  // by token text
  TextMap<std::vector<std::string>> pair_tokens_;  // pair hash -> tokens cached in issued_
};

}  // namespace stokend::tokens
