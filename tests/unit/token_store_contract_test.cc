// The TokenStore contract (tokens/token_store.h), run against every backend:
// the SQLite file and Redis (a private redis-server, tests/support/
// redis_server.h), the latter also with the daemon's verification cache
// (redis-cached: another node's writes reach it over pub/sub, within a
// bound rather than at once). The same assertions passing on both is the proof that a
// node can switch backends without a change in behaviour: normalised
// addresses, the newest unexpired issued token, marks that only move
// forward, the wallet's newer-token rule and conditional delete, what
// remove_expired drops, a second connection (another node, or stokenctl)
// seeing writes, use from several threads, and the token authority on top.
//
// Times are in the future of the real clock: Redis expires keys by the real
// clock (EXPIREAT), so a token "expired" by a fixed past date would already
// be gone there.
#include <atomic>
#include <catch2/catch.hpp>
#include <chrono>
#include <ctime>
#include <functional>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "tests/support/redis_server.h"
#include "tests/support/temporary_directory.h"
#include "tests/support/token_samples.h"
#include "tokens/redis_token_store.h"
#include "tokens/secret_rings.h"
#include "tokens/sqlite_token_store.h"
#include "tokens/token_authority.h"

using namespace stokend;
using namespace stokend::tokens;
using stokend::testing::RedisServer;
using stokend::testing::TemporaryDirectory;
using namespace std::chrono_literals;

using stokend::testing::issued;
using stokend::testing::wallet;

namespace {

// An hour ahead of the real clock: nothing written expires during a test.
const std::int64_t now = static_cast<std::int64_t>(std::time(nullptr)) + 3600;

// One backend: opens stores on the same data, as the daemon, stokenctl or
// another node would.
struct Backend {
  std::string name;
  TemporaryDirectory directory;
  std::unique_ptr<RedisServer> redis;

  explicit Backend(std::string backend) : name(std::move(backend)) {
    if (name != "sqlite") redis = std::make_unique<RedisServer>();
  }
  bool available() const { return !redis || redis->available(); }
  bool cached() const { return name == "redis-cached"; }

  std::unique_ptr<TokenStore> open() const {
    if (redis) {
      RedisTokenStore::Options options;
      const auto parsed = parse_redis_url(redis->url());
      REQUIRE(parsed.error.empty());
      options.connection.endpoint = parsed.endpoint;
      options.verification_cache = cached();
      auto store = std::make_unique<RedisTokenStore>(options);
      // Subscribed before the test starts, as a daemon is within moments.
      if (cached()) REQUIRE(seen([&] { return store->verification_cache()->live(); }));
      return store;
    }
    SqliteTokenStore::Options options;
    options.change_check_interval = 0ms;  // another connection's writes at once
    return std::make_unique<SqliteTokenStore>(directory.path() / "tokens.db", options);
  }

  // Whether another connection's write shows: at once, or for the cached
  // store within a bound (a pub/sub delivery takes well under a
  // millisecond; 2 s keeps a loaded machine from making it flaky).
  bool seen(const std::function<bool()>& condition) const {
    const auto deadline = std::chrono::steady_clock::now() + (cached() ? 2s : 0s);
    while (!condition()) {
      if (std::chrono::steady_clock::now() >= deadline) return false;
      std::this_thread::sleep_for(2ms);
    }
    return true;
  }
};

// The backends a test runs on; redis is skipped, with a warning, when
// redis-server is not installed.
std::unique_ptr<Backend> backend_under_test() {
  auto backend =
      std::make_unique<Backend>(GENERATE(as<std::string>{}, "sqlite", "redis", "redis-cached"));
  if (!backend->available()) {
    WARN("redis-server is not installed: the Redis backend is not tested");
    return nullptr;
  }
  return backend;
}

}  // namespace

TEST_CASE("contract: issued tokens are stored, found, listed and deleted by pair",
          "[tokens][token_store_contract]") {
  const auto backend = backend_under_test();
  if (!backend) return;
  INFO("backend " << backend->name);
  const auto store = backend->open();
  CHECK_FALSE(store->find_issued("t-a"));
  store->add_issued(issued("t-a", "pair-1", now, "Alice@A.Test", "BOB@b.test"));
  store->add_issued(issued("t-b", "pair-1", now + 10));
  store->add_issued(issued("t-c", "pair-2", now + 5, "carol@a.test"));

  const auto found = store->find_issued("t-a");
  REQUIRE(found);
  CHECK(found->token == "t-a");
  CHECK(found->local_address == "alice@a.test");  // stored normalised
  CHECK(found->remote_address == "bob@b.test");
  CHECK(found->pair_hash == "pair-1");
  CHECK(found->created == now);
  CHECK(found->expires == now + 1000);

  CHECK(store->newest_issued("pair-1", now)->token == "t-b");
  CHECK_FALSE(store->newest_issued("pair-1", now + 1010));  // both expired by then
  CHECK(store->newest_issued("pair-1", now + 1005)->token == "t-b");
  CHECK_FALSE(store->newest_issued("pair-3", now));

  CHECK(store->list_issued("").size() == 3);
  const auto alices = store->list_issued("ALICE@a.test");
  REQUIRE(alices.size() == 2);
  CHECK(alices[0].token == "t-a");
  CHECK(alices[1].token == "t-b");

  CHECK(store->delete_issued("pair-1") == 2);
  CHECK(store->delete_issued("pair-1") == 0);
  CHECK_FALSE(store->find_issued("t-a"));
  CHECK(store->find_issued("t-c"));
  CHECK(store->list_issued("alice@a.test").empty());
}

TEST_CASE("contract: a revocation mark only moves forward", "[tokens][token_store_contract]") {
  const auto backend = backend_under_test();
  if (!backend) return;
  INFO("backend " << backend->name);
  const auto store = backend->open();
  CHECK_FALSE(store->revocation_mark("pair"));
  store->set_revocation_mark("pair", now);
  CHECK(store->revocation_mark("pair") == now);
  store->set_revocation_mark("pair", now - 100);
  CHECK(store->revocation_mark("pair") == now);
  store->set_revocation_mark("pair", now + 100);
  CHECK(store->revocation_mark("pair") == now + 100);
  CHECK_FALSE(store->revocation_mark("other"));
}

TEST_CASE("contract: the wallet keeps the newer token of a pair",
          "[tokens][token_store_contract]") {
  const auto backend = backend_under_test();
  if (!backend) return;
  INFO("backend " << backend->name);
  const auto store = backend->open();
  CHECK(store->put_wallet(wallet("first", now)));
  CHECK_FALSE(store->put_wallet(wallet("older", now - 1)));
  CHECK(store->find_wallet("alice@a.test", "bob@b.test")->token == "first");
  CHECK(store->put_wallet(wallet("same-age", now)));  // not older: replaces
  WalletToken newer = wallet("newer", now + 1);
  newer.permanent = true;
  newer.source = "2.1.13";
  newer.local_address = "ALICE@A.test";
  newer.remote_address = "Bob@B.test";
  CHECK(store->put_wallet(newer));

  const auto found = store->find_wallet("Alice@a.test", "BOB@b.test");
  REQUIRE(found);
  CHECK(found->token == "newer");
  CHECK(found->local_address == "alice@a.test");
  CHECK(found->remote_address == "bob@b.test");
  CHECK(found->pair_hash == "hash");
  CHECK(found->created == now + 1);
  CHECK(found->expires == now + 1001);
  CHECK(found->permanent);
  CHECK(found->source == "2.1.13");

  store->put_wallet(wallet("for-carol", now, "carol@c.test"));
  CHECK(store->list_wallet("").size() == 2);
  const auto alices = store->list_wallet("alice@a.test");
  REQUIRE(alices.size() == 2);
  CHECK(alices[0].remote_address == "bob@b.test");
  CHECK(alices[1].remote_address == "carol@c.test");
  CHECK(store->list_wallet("nobody@a.test").empty());

  // Deleted only while it still holds that token.
  CHECK_FALSE(store->delete_wallet("alice@a.test", "bob@b.test", "first"));
  CHECK(store->find_wallet("alice@a.test", "bob@b.test"));
  CHECK(store->delete_wallet("alice@a.test", "bob@b.test", "newer"));
  CHECK_FALSE(store->find_wallet("alice@a.test", "bob@b.test"));
  CHECK(store->list_wallet("alice@a.test").size() == 1);
}

TEST_CASE("contract: remove_expired drops expired rows and old marks",
          "[tokens][token_store_contract]") {
  const auto backend = backend_under_test();
  if (!backend) return;
  INFO("backend " << backend->name);
  const auto store = backend->open();
  store->add_issued(issued("expired", "pair-1", now - 2000));  // expires now - 1000
  store->add_issued(issued("at-now", "pair-1", now - 1000));   // expires now
  store->add_issued(issued("live", "pair-1", now));            // expires now + 1000
  store->put_wallet(wallet("old", now - 1500));
  store->put_wallet(wallet("fresh", now, "carol@c.test"));
  store->set_revocation_mark("old-mark", now - 100);
  store->set_revocation_mark("new-mark", now);
  CHECK(store->find_issued("expired"));

  CHECK(store->remove_expired(now, now - 50) == 4);
  CHECK_FALSE(store->find_issued("expired"));
  CHECK_FALSE(store->find_issued("at-now"));
  CHECK(store->find_issued("live"));
  CHECK(store->newest_issued("pair-1", now - 3000)->token == "live");
  CHECK(store->list_issued("alice@a.test").size() == 1);
  CHECK_FALSE(store->find_wallet("alice@a.test", "bob@b.test"));
  CHECK(store->find_wallet("alice@a.test", "carol@c.test"));
  CHECK(store->list_wallet("alice@a.test").size() == 1);
  CHECK_FALSE(store->revocation_mark("old-mark"));
  CHECK(store->revocation_mark("new-mark") == now);
  CHECK(store->remove_expired(now, now - 50) == 0);
}

TEST_CASE("contract: another connection's writes are seen at once",
          "[tokens][token_store_contract]") {
  const auto backend = backend_under_test();
  if (!backend) return;
  INFO("backend " << backend->name);
  const auto node1 = backend->open();
  const auto node2 = backend->open();
  CHECK_FALSE(node1->find_issued("t-1"));  // a cached "not stored" too
  CHECK_FALSE(node1->revocation_mark("pair-1"));
  node2->add_issued(issued("t-1", "pair-1", now));
  node2->set_revocation_mark("pair-1", now);
  node2->put_wallet(wallet("w", now));
  CHECK(backend->seen([&] { return node1->find_issued("t-1").has_value(); }));
  CHECK(backend->seen([&] { return node1->revocation_mark("pair-1") == now; }));
  CHECK(node1->find_wallet("alice@a.test", "bob@b.test")->token == "w");
  CHECK(node2->delete_issued("pair-1") == 1);
  CHECK(backend->seen([&] { return !node1->find_issued("t-1"); }));
}

TEST_CASE("contract: the store can be used from several threads at once",
          "[tokens][token_store_contract]") {
  const auto backend = backend_under_test();
  if (!backend) return;
  INFO("backend " << backend->name);
  const auto store = backend->open();
  for (int i = 0; i < 20; ++i) store->set_revocation_mark("pair-" + std::to_string(i), now + i);
  std::vector<std::thread> threads;
  std::atomic<int> wrong{0};
  for (int thread = 0; thread < 4; ++thread) {
    threads.emplace_back([&, thread] {
      for (int i = 0; i < 200; ++i) {
        const int pair = (i * 7 + thread) % 20;
        if (store->revocation_mark("pair-" + std::to_string(pair)) != now + pair) ++wrong;
        if (i % 40 == 0) {
          store->add_issued(
              issued("t" + std::to_string(thread) + "-" + std::to_string(i), "x", now));
        }
      }
    });
  }
  for (std::thread& thread : threads) thread.join();
  CHECK(wrong == 0);
  CHECK(store->list_issued("").size() == 20);
}

TEST_CASE(
    "contract: a token minted on one node verifies on another, and a revocation on one "
    "holds on both",
    "[tokens][token_store_contract]") {
  const auto backend = backend_under_test();
  if (!backend) return;
  INFO("backend " << backend->name);
  // One secrets file for both nodes (README: the operator distributes it).
  const SecretRings rings =
      SecretRings::load_or_create((backend->directory.path() / "token-secrets").string(), now);
  const auto store1 = backend->open();
  const auto store2 = backend->open();
  std::int64_t clock = now;
  TokenAuthority node1(rings, *store1, TokenPolicy{}, [&] { return clock; });
  TokenAuthority node2(rings, *store2, TokenPolicy{}, [&] { return clock; });
  const std::string temporary = node1.mint_temporary("bob@b.test", "alice@a.test");
  const std::string permanent = node1.permanent_for("bob@b.test", "alice@a.test");
  CHECK(node2.verify(temporary, "bob@b.test", "alice@a.test").valid());
  CHECK(node2.verify(permanent, "bob@b.test", "alice@a.test").valid());
  CHECK(node2.permanent_for("bob@b.test", "alice@a.test") == permanent);

  node2.revoke("bob@b.test", "alice@a.test");
  CHECK(backend->seen([&] {
    return node1.verify(temporary, "bob@b.test", "alice@a.test").verdict == TokenVerdict::revoked;
  }));
  CHECK(backend->seen([&] {
    return node1.verify(permanent, "bob@b.test", "alice@a.test").verdict ==
           TokenVerdict::unknown_permanent;
  }));
  // A token minted after the revocation is valid on both.
  ++clock;
  const std::string fresh = node1.mint_temporary("bob@b.test", "alice@a.test");
  CHECK(backend->seen([&] { return node2.verify(fresh, "bob@b.test", "alice@a.test").valid(); }));
}
