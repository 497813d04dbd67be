// RedisInvalidations: one subscriber connection per node to the channel on
// which the Redis token store announces every write that can change a
// verification (redis_token_store.h), feeding a VerificationCache
// (verification_cache.h).
//
// Why pub/sub and not client-side caching: Debian's hiredis (0.14) speaks
// RESP2 only, and Redis's CLIENT TRACKING in RESP2 needs a second
// connection redirected to the same kind of channel anyway; a channel of our
// own, published to by the write scripts themselves (atomic with the
// write), keeps it to one mechanism.
//
// Its own thread, with a blocking hiredis context it only reads after
// poll(2) said there is something to read, so that it can also wake for a
// PING, for the silence deadline and to stop:
//   1. connect (Options::connect_timeout), AUTH, SUBSCRIBE the channel;
//   2. on the subscription's confirmation: cache.set_live() (empties it:
//      what was written while nobody listened is forgotten);
//   3. each message (a pair hash): cache.invalidate(hash);
//   4. a PING every Options::ping_interval; when nothing at all came from
//      Redis for Options::silence_limit (a dead network drops no
//      connection) or the connection fails: cache.set_stale() at once, a
//      warning, and a new attempt after a back-off (min_retry_delay,
//      doubling up to max_retry_delay).
// So a cache answers only while its node would have heard of every write;
// a node cut off silently stops trusting it within silence_limit.
//
// Contract: the constructor starts the thread and returns at once (Redis
// need not be up); the destructor stops it within connect_timeout and joins.
// Logs (warn) when the subscription is lost and (info) when it is back, once
// per outage; never the password.
#pragma once

#include <chrono>
#include <string>
#include <thread>

#include "common/unique_fd.h"
#include "tokens/redis_url.h"
#include "tokens/verification_cache.h"

namespace stokend::tokens {

class RedisInvalidations {
 public:
  struct Options {
    RedisEndpoint endpoint;
    std::string password;  // empty: no AUTH
    std::string channel;
    std::chrono::milliseconds connect_timeout{1000};
    std::chrono::milliseconds ping_interval{200};
    std::chrono::milliseconds silence_limit{1000};
    std::chrono::milliseconds min_retry_delay{100};
    std::chrono::milliseconds max_retry_delay{5000};
  };

  RedisInvalidations(Options options, VerificationCache& cache);
  ~RedisInvalidations();
  RedisInvalidations(const RedisInvalidations&) = delete;
  RedisInvalidations& operator=(const RedisInvalidations&) = delete;

 private:
  void run();
  // One subscription, from connecting until it fails or stop is asked;
  // returns the reason it ended (empty when stopping). `subscribed` tells
  // whether it got as far as the subscription.
  std::string subscribe_once(bool& subscribed);
  // Waits up to `delay` for the stop request; true when asked to stop.
  bool wait_for_stop(std::chrono::milliseconds delay) const;

  Options options_;
  VerificationCache& cache_;
  UniqueFd stop_;  // an eventfd, written by the destructor
  std::thread thread_;
};

}  // namespace stokend::tokens
