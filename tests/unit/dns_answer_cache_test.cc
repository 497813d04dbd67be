// Tests of the DNS answer cache: TTLs, negative answers, case, LRU eviction.
#include <catch2/catch.hpp>
#include <chrono>
#include <string>
#include <vector>

#include "dns/answer_cache.h"

using namespace stokend;
using namespace stokend::dns;
using namespace std::chrono_literals;

namespace {

struct ManualClock {
  AnswerCache::Clock::time_point now = AnswerCache::Clock::time_point{} + 1000h;
  AnswerCache::Now function() {
    return [this] { return now; };
  }
};

Answer<MxRecord> mx_answer(std::uint32_t ttl) {
  return Answer<MxRecord>{Status::ok, {{10, "mx.a.test"}}, "", ttl};
}

}  // namespace

TEST_CASE("a cached answer lives for its TTL and reports the time left", "[dns]") {
  ManualClock clock;
  AnswerCache cache(10, clock.function());
  cache.store(RecordType::mx, "a.test", mx_answer(300));

  clock.now += 100s;
  auto hit = cache.find<MxRecord>(RecordType::mx, "a.test");
  REQUIRE(hit.has_value());
  CHECK(hit->status == Status::ok);
  CHECK(hit->records == std::vector<MxRecord>{{10, "mx.a.test"}});
  CHECK(hit->ttl_seconds == 200);

  clock.now += 199500ms;
  REQUIRE(cache.find<MxRecord>(RecordType::mx, "a.test").has_value());
  CHECK(cache.find<MxRecord>(RecordType::mx, "a.test")->ttl_seconds == 1);  // rounded up
  clock.now += 500ms;
  CHECK_FALSE(cache.find<MxRecord>(RecordType::mx, "a.test").has_value());
  CHECK(cache.size() == 0);
}

TEST_CASE("the cache keys on type and on the name without case or final dot", "[dns]") {
  ManualClock clock;
  AnswerCache cache(10, clock.function());
  cache.store(RecordType::mx, "A.Test.", mx_answer(60));
  CHECK(cache.find<MxRecord>(RecordType::mx, "a.test").has_value());
  CHECK(cache.find<MxRecord>(RecordType::mx, "a.TEST.").has_value());
  CHECK_FALSE(cache.find<std::string>(RecordType::txt, "a.test").has_value());
  CHECK_FALSE(cache.find<MxRecord>(RecordType::mx, "b.test").has_value());
}

TEST_CASE("negative answers are cached; temporary failures and TTL 0 are not", "[dns]") {
  ManualClock clock;
  AnswerCache cache(10, clock.function());
  cache.store(RecordType::a, "gone.test",
              Answer<std::string>{Status::not_found, {}, "NXDOMAIN", 60});
  cache.store(RecordType::a, "empty.test", Answer<std::string>{Status::no_data, {}, "", 60});
  cache.store(RecordType::a, "broken.test",
              Answer<std::string>{Status::temporary_failure, {}, "timeout", 60});
  cache.store(RecordType::a, "volatile.test",
              Answer<std::string>{Status::ok, {"192.0.2.1"}, "", 0});

  auto gone = cache.find<std::string>(RecordType::a, "gone.test");
  REQUIRE(gone.has_value());
  CHECK(gone->status == Status::not_found);
  CHECK(gone->error == "NXDOMAIN");
  CHECK(cache.find<std::string>(RecordType::a, "empty.test")->status == Status::no_data);
  CHECK_FALSE(cache.find<std::string>(RecordType::a, "broken.test").has_value());
  CHECK_FALSE(cache.find<std::string>(RecordType::a, "volatile.test").has_value());
}

TEST_CASE("a full cache drops the least recently used answer", "[dns]") {
  ManualClock clock;
  AnswerCache cache(2, clock.function());
  cache.store(RecordType::mx, "one.test", mx_answer(60));
  cache.store(RecordType::mx, "two.test", mx_answer(60));
  REQUIRE(cache.find<MxRecord>(RecordType::mx, "one.test").has_value());  // one is now newer
  cache.store(RecordType::mx, "three.test", mx_answer(60));
  CHECK(cache.size() == 2);
  CHECK(cache.find<MxRecord>(RecordType::mx, "one.test").has_value());
  CHECK_FALSE(cache.find<MxRecord>(RecordType::mx, "two.test").has_value());
  CHECK(cache.find<MxRecord>(RecordType::mx, "three.test").has_value());

  // Storing again replaces, without growing.
  cache.store(RecordType::mx, "three.test", mx_answer(120));
  CHECK(cache.size() == 2);
  CHECK(cache.find<MxRecord>(RecordType::mx, "three.test")->ttl_seconds == 120);
}

TEST_CASE("a cache of capacity zero stores nothing", "[dns]") {
  AnswerCache cache(0);
  cache.store(RecordType::mx, "a.test", mx_answer(60));
  CHECK(cache.size() == 0);
  CHECK_FALSE(cache.find<MxRecord>(RecordType::mx, "a.test").has_value());
}
