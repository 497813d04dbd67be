// Tests of the MX (RFC 5321 section 5.1) and SRV (RFC 2782) orderings.
#include <catch2/catch.hpp>
#include <map>
#include <string>
#include <vector>

#include "dns/record_order.h"

using namespace stokend;
using namespace stokend::dns;

TEST_CASE("MX records: preference order, ties shuffled", "[dns]") {
  std::mt19937 random(1);
  std::map<std::string, int> first_counts;
  for (int attempt = 0; attempt < 1000; ++attempt) {
    std::vector<MxRecord> ordered =
        order_mail_exchangers({{5, "c"}, {1, "a"}, {1, "b"}, {0, "z"}}, random);
    REQUIRE(ordered.size() == 4);
    CHECK(ordered[0] == MxRecord{0, "z"});
    CHECK(ordered[1].preference == 1);
    CHECK(ordered[2].preference == 1);
    CHECK(ordered[3] == MxRecord{5, "c"});
    ++first_counts[ordered[1].host];
  }
  CHECK(first_counts["a"] > 400);
  CHECK(first_counts["b"] > 400);
}

TEST_CASE("SRV records: lower priority first", "[dns]") {
  std::mt19937 random(2);
  std::vector<SrvRecord> ordered = order_service_records(
      {{30, 5, 1, "c"}, {10, 0, 1, "a"}, {20, 100, 1, "b"}, {10, 0, 2, "a2"}}, random);
  REQUIRE(ordered.size() == 4);
  CHECK(ordered[0].priority == 10);
  CHECK(ordered[1].priority == 10);
  CHECK(ordered[2].target == "b");
  CHECK(ordered[3].target == "c");
}

TEST_CASE("SRV records: within a priority, chosen in proportion to weight", "[dns]") {
  std::mt19937 random(3);
  int heavy_first = 0;
  int zero_first = 0;
  const int attempts = 4000;
  for (int attempt = 0; attempt < attempts; ++attempt) {
    std::vector<SrvRecord> ordered = order_service_records(
        {{1, 10, 1, "light"}, {1, 30, 1, "heavy"}, {1, 0, 1, "zero"}}, random);
    REQUIRE(ordered.size() == 3);
    if (ordered[0].target == "heavy") ++heavy_first;
    if (ordered[0].target == "zero") ++zero_first;
  }
  // heavy: 30 of 40 weight units; zero only when the random number is 0 (1 in 41).
  CHECK(heavy_first > attempts * 65 / 100);
  CHECK(heavy_first < attempts * 80 / 100);
  CHECK(zero_first < attempts * 5 / 100);
}

TEST_CASE("SRV records: all weights zero still yields every record", "[dns]") {
  std::mt19937 random(4);
  std::vector<SrvRecord> ordered =
      order_service_records({{1, 0, 1, "a"}, {1, 0, 2, "b"}, {1, 0, 3, "c"}}, random);
  CHECK(ordered.size() == 3);
  CHECK(order_service_records({}, random).empty());
}
