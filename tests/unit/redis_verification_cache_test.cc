// Unit tests of the Redis store's verification cache kept current over
// pub/sub (tokens/redis_token_store.h, redis_invalidations.h), against a
// private redis-server (tests/support/redis_server.h) shared by two store
// instances, as two nodes share one: a revocation or a deletion through one
// reaches the other's cache within a bound; the cache really answers (a
// change made behind the store's back, without an announcement, is not
// seen while the subscription holds); and a lost subscription (connection
// killed, Redis stopped, Redis silent) makes the cache bypassed until it is
// back and emptied.
#include <catch2/catch.hpp>
#include <chrono>
#include <ctime>
#include <functional>
#include <string>
#include <thread>

#include "tests/support/redis_server.h"
#include "tests/support/temporary_directory.h"
#include "tokens/redis_token_store.h"
#include "tokens/secret_rings.h"
#include "tokens/token_authority.h"
#include "tokens/token_metrics.h"

using namespace stokend;
using namespace stokend::tokens;
using stokend::testing::RedisServer;
using stokend::testing::TemporaryDirectory;
using namespace std::chrono_literals;

namespace {

const std::int64_t now = static_cast<std::int64_t>(std::time(nullptr)) + 3600;

// The longest a change may take to reach another node's cache here: far
// above a pub/sub delivery (under a millisecond), so that a loaded machine
// or the sanitizers do not make it flaky, and still a bound.
constexpr auto propagation_bound = 2s;

RedisTokenStore::Options options_for(const RedisServer& redis, bool cache) {
  RedisTokenStore::Options options;
  options.connection.endpoint = parse_redis_url(redis.url()).endpoint;
  options.connection.connect_timeout = 500ms;
  options.connection.command_timeout = 500ms;
  options.connection.max_retry_delay = 200ms;
  options.verification_cache = cache;
  options.ping_interval = 50ms;
  options.silence_limit = 400ms;
  return options;
}

// Polls `condition` (errors count as "not yet") until it holds or `bound`
// passes; returns whether it held.
bool within(std::chrono::milliseconds bound, const std::function<bool()>& condition) {
  const auto deadline = std::chrono::steady_clock::now() + bound;
  do {
    try {
      if (condition()) return true;
    } catch (const TokenStoreError&) {
    }
    std::this_thread::sleep_for(5ms);
  } while (std::chrono::steady_clock::now() < deadline);
  return false;
}

bool live(const RedisTokenStore& store) { return store.verification_cache()->live(); }

// A raw command on a connection of its own, as redis-cli would send it.
void raw(const RedisServer& redis, const std::vector<std::string_view>& words) {
  RedisConnections::Options options;
  options.endpoint = parse_redis_url(redis.url()).endpoint;
  RedisConnections connections(options);
  connections.command(words, "test command");
}

}  // namespace

#define REQUIRE_REDIS(redis)                                                     \
  if (!(redis).available()) {                                                    \
    WARN("redis-server is not installed: the verification cache is not tested"); \
    return;                                                                      \
  }

TEST_CASE("redis cache: another node's revocation and deletion reach this node within a bound",
          "[tokens][redis_cache]") {
  RedisServer redis;
  REQUIRE_REDIS(redis);
  TemporaryDirectory directory;
  const SecretRings rings =
      SecretRings::load_or_create((directory.path() / "token-secrets").string(), now);
  RedisTokenStore store1(options_for(redis, false));  // a node, or stokenctl
  RedisTokenStore store2(options_for(redis, true));
  REQUIRE(within(propagation_bound, [&] { return live(store2); }));
  std::int64_t clock = now;
  TokenAuthority node1(rings, store1, TokenPolicy{}, [&] { return clock; });
  TokenAuthority node2(rings, store2, TokenPolicy{}, [&] { return clock; });
  const std::string temporary = node1.mint_temporary("bob@b.test", "alice@a.test");
  const std::string permanent = node1.permanent_for("bob@b.test", "alice@a.test");
  CHECK(node2.verify(temporary, "bob@b.test", "alice@a.test").valid());
  CHECK(node2.verify(permanent, "bob@b.test", "alice@a.test").valid());

  ++clock;
  node1.revoke("bob@b.test", "alice@a.test");
  CHECK(within(propagation_bound, [&] {
    return node2.verify(temporary, "bob@b.test", "alice@a.test").verdict == TokenVerdict::revoked;
  }));
  CHECK(within(propagation_bound, [&] {
    return node2.verify(permanent, "bob@b.test", "alice@a.test").verdict ==
           TokenVerdict::unknown_permanent;
  }));
  // A token issued after that is known at once on the other node: adding
  // it announces the pair, which drops the cached "not stored" of the pair.
  ++clock;
  const std::string renewed = node1.renew_permanent("bob@b.test", "alice@a.test");
  CHECK(within(propagation_bound,
               [&] { return node2.verify(renewed, "bob@b.test", "alice@a.test").valid(); }));
}

TEST_CASE("redis cache: verification answers from the cache while subscribed",
          "[tokens][redis_cache]") {
  RedisServer redis;
  REQUIRE_REDIS(redis);
  RedisTokenStore store(options_for(redis, true));
  REQUIRE(within(propagation_bound, [&] { return live(store); }));
  const auto hits = token_metrics().cache_hits->value();
  const auto misses = token_metrics().cache_misses->value();
  CHECK_FALSE(store.revocation_mark("pair-1"));
  // Behind the store's back, with no announcement: the cache still says
  // "no mark", which shows the second read did not go to Redis.
  raw(redis, {"SET", "stokend:mark:pair-1", std::to_string(now)});
  CHECK_FALSE(store.revocation_mark("pair-1"));
  CHECK(token_metrics().cache_misses->value() == misses + 1);
  CHECK(token_metrics().cache_hits->value() == hits + 1);
  CHECK(token_metrics().cache_subscribed->value() == 1);
  // An announcement of the pair (what every write script publishes).
  raw(redis, {"PUBLISH", "stokend:changes", "pair-1"});
  CHECK(within(propagation_bound, [&] { return store.revocation_mark("pair-1") == now; }));
}

TEST_CASE("redis cache: a lost subscription makes the cache bypassed until it is back",
          "[tokens][redis_cache]") {
  RedisServer redis;
  REQUIRE_REDIS(redis);
  RedisTokenStore store(options_for(redis, true));
  REQUIRE(within(propagation_bound, [&] { return live(store); }));

  SECTION("the subscriber's connection is killed") {
    CHECK_FALSE(store.revocation_mark("pair-1"));
    raw(redis, {"SET", "stokend:mark:pair-1", std::to_string(now)});  // not announced
    raw(redis, {"CLIENT", "KILL", "TYPE", "pubsub"});
    // Bypassed while down, emptied when back: the change shows either way.
    CHECK(within(propagation_bound, [&] { return store.revocation_mark("pair-1") == now; }));
    CHECK(within(propagation_bound, [&] { return live(store); }));
  }
  SECTION("Redis stops: no verdict from the cache, a TokenStoreError instead") {
    CHECK_FALSE(store.revocation_mark("pair-1"));
    redis.stop();
    CHECK(within(propagation_bound, [&] { return !live(store); }));
    CHECK_THROWS_AS(store.revocation_mark("pair-1"), TokenStoreError);
    redis.start();
    CHECK(within(5s, [&] { return live(store); }));
    // The command connection comes back on its own back-off schedule, which
    // may be a moment behind the subscriber's.
    CHECK(within(5s, [&] {
      try {
        return !store.revocation_mark("pair-1");
      } catch (const TokenStoreError&) {
        return false;
      }
    }));
    CHECK(store.verification_cache()->size() == 1);
  }
  SECTION("Redis stops answering without closing the connection") {
    CHECK_FALSE(store.revocation_mark("pair-1"));
    // Every client's commands wait, the subscriber's PINGs too: after the
    // silence limit (400 ms here) the cache is no longer trusted.
    raw(redis, {"CLIENT", "PAUSE", "1500", "ALL"});
    CHECK(within(1200ms, [&] { return !live(store); }));
    CHECK(within(5s, [&] { return live(store); }));
  }
}
