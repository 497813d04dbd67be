// Unit tests of the verification cache's freshness rules
// (tokens/verification_cache.h), without Redis: nothing is answered or kept
// while stale, an invalidation drops exactly its pair, a read that raced
// with an invalidation is not kept, resubscribing forgets everything, and
// the size and age bounds (also below the tick of the coarse clock it
// reads ages from).
#include "tokens/verification_cache.h"

#include <catch2/catch.hpp>
#include <chrono>
#include <thread>

using namespace stokend::tokens;
using namespace std::chrono_literals;

namespace {

IssuedToken row(const std::string& token, const std::string& pair) {
  return IssuedToken{token, "alice@a.test", "bob@b.test", pair, 100, 200};
}

}  // namespace

TEST_CASE("verification cache: a stale cache answers nothing and keeps nothing",
          "[tokens][verification_cache]") {
  VerificationCache cache({});
  CHECK_FALSE(cache.live());  // starts stale: nothing is trusted before a subscription
  cache.insert_mark(cache.sequence(), "pair-1", 5);
  CHECK_FALSE(cache.mark("pair-1"));
  CHECK(cache.size() == 0);

  cache.set_live();
  cache.insert_mark(cache.sequence(), "pair-1", 5);
  REQUIRE(cache.mark("pair-1"));
  CHECK(*cache.mark("pair-1") == VerificationCache::Mark(5));

  cache.set_stale();  // the subscription broke: bypassed at once, and emptied
  CHECK_FALSE(cache.mark("pair-1"));
  CHECK(cache.size() == 0);
  cache.set_live();  // back, but what was missed meanwhile is not remembered
  CHECK_FALSE(cache.mark("pair-1"));
}

TEST_CASE("verification cache: an invalidation drops the pair's mark and tokens, no other",
          "[tokens][verification_cache]") {
  VerificationCache cache({});
  cache.set_live();
  auto at = cache.sequence();
  cache.insert_mark(at, "pair-1", 5);
  cache.insert_mark(at, "pair-2", std::nullopt);  // "no mark" is cached too
  cache.insert_issued(at, "tok-a", "pair-1", row("tok-a", "pair-1"));
  cache.insert_issued(at, "tok-b", "pair-1", std::nullopt);  // "not stored" too
  cache.insert_issued(at, "tok-c", "pair-2", row("tok-c", "pair-2"));
  REQUIRE(cache.mark("pair-2"));
  CHECK_FALSE(cache.mark("pair-2")->has_value());
  REQUIRE(cache.issued("tok-b"));
  CHECK_FALSE(cache.issued("tok-b")->has_value());
  CHECK(cache.issued("tok-a")->value().pair_hash == "pair-1");

  cache.invalidate("pair-1");
  CHECK_FALSE(cache.mark("pair-1"));
  CHECK_FALSE(cache.issued("tok-a"));
  CHECK_FALSE(cache.issued("tok-b"));
  CHECK(cache.mark("pair-2"));
  CHECK(cache.issued("tok-c"));
  CHECK(cache.size() == 2);
}

TEST_CASE("verification cache: a read older than an invalidation is not kept",
          "[tokens][verification_cache]") {
  VerificationCache cache({});
  cache.set_live();
  // A verification reads the old mark from the store...
  const auto read_at = cache.sequence();
  // ...a revocation of the pair is announced before it stores the result...
  cache.invalidate("pair-1");
  cache.insert_mark(read_at, "pair-1", std::nullopt);
  // ...so the next verification asks the store again.
  CHECK_FALSE(cache.mark("pair-1"));

  // The same after the subscription broke and came back in between.
  const auto before_outage = cache.sequence();
  cache.set_stale();
  cache.set_live();
  cache.insert_issued(before_outage, "tok-a", "pair-1", std::nullopt);
  CHECK_FALSE(cache.issued("tok-a"));
}

TEST_CASE("verification cache: bounded in size and in age", "[tokens][verification_cache]") {
  SECTION("a full cache is emptied and refills") {
    VerificationCache cache({.max_entries = 3, .max_age = 10min});
    cache.set_live();
    for (int i = 0; i < 3; ++i) {
      cache.insert_mark(cache.sequence(), "pair-" + std::to_string(i), i);
    }
    CHECK(cache.size() == 3);
    cache.insert_mark(cache.sequence(), "pair-3", 3);
    CHECK(cache.size() == 1);
    CHECK(cache.mark("pair-3"));
    CHECK_FALSE(cache.mark("pair-0"));
  }
  SECTION("an entry older than max_age is asked again") {
    VerificationCache cache({.max_entries = 10, .max_age = 50ms});
    cache.set_live();
    cache.insert_mark(cache.sequence(), "pair-1", 1);
    CHECK(cache.mark("pair-1"));
    std::this_thread::sleep_for(80ms);
    CHECK_FALSE(cache.mark("pair-1"));
  }
  SECTION("no entry outlives max_age, even one shorter than the coarse clock's tick") {
    // Ages are read from a clock of a few milliseconds' resolution: an entry
    // 2 ms old would still look fresh to it, within the same tick, unless
    // its deadline is set a tick early.
    VerificationCache cache({.max_entries = 10, .max_age = 1ms});
    cache.set_live();
    cache.insert_mark(cache.sequence(), "pair-1", 1);
    cache.insert_issued(cache.sequence(), "tok-a", "pair-1", row("tok-a", "pair-1"));
    std::this_thread::sleep_for(2ms);
    CHECK_FALSE(cache.mark("pair-1"));
    CHECK_FALSE(cache.issued("tok-a"));
  }
}
