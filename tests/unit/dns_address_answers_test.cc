// Tests of how A and AAAA answers combine, and of IP literal recognition.
#include <catch2/catch.hpp>
#include <string>
#include <vector>

#include "dns/address_answers.h"

using namespace stokend;
using namespace stokend::dns;

namespace {

Answer<std::string> with(std::vector<std::string> addresses, std::uint32_t ttl) {
  return Answer<std::string>{Status::ok, std::move(addresses), "", ttl};
}
Answer<std::string> without(Status status, std::string error = "", std::uint32_t ttl = 60) {
  return Answer<std::string>{status, {}, std::move(error), ttl};
}

}  // namespace

TEST_CASE("addresses of both families: IPv4 first, lowest TTL", "[dns]") {
  Answer<std::string> both =
      combine_address_answers(with({"192.0.2.1"}, 300), with({"2001:db8::1"}, 100));
  CHECK(both.status == Status::ok);
  CHECK(both.records == std::vector<std::string>{"192.0.2.1", "2001:db8::1"});
  CHECK(both.ttl_seconds == 100);
}

TEST_CASE("one family is enough, whatever happened to the other", "[dns]") {
  for (Status other : {Status::no_data, Status::not_found, Status::temporary_failure}) {
    Answer<std::string> ipv4 = combine_address_answers(with({"192.0.2.1"}, 300), without(other));
    CHECK(ipv4.status == Status::ok);
    CHECK(ipv4.records == std::vector<std::string>{"192.0.2.1"});
    CHECK(ipv4.ttl_seconds == 300);
    Answer<std::string> ipv6 = combine_address_answers(without(other), with({"2001:db8::1"}, 30));
    CHECK(ipv6.status == Status::ok);
    CHECK(ipv6.records == std::vector<std::string>{"2001:db8::1"});
  }
}

TEST_CASE("no addresses: temporary failure wins, then NODATA, then NXDOMAIN", "[dns]") {
  CHECK(combine_address_answers(without(Status::not_found), without(Status::temporary_failure))
            .status == Status::temporary_failure);
  CHECK(combine_address_answers(without(Status::temporary_failure, "A: timeout"),
                                without(Status::no_data, "AAAA: no data"))
            .error == "A: timeout; AAAA: no data");
  CHECK(combine_address_answers(without(Status::no_data), without(Status::not_found)).status ==
        Status::no_data);
  Answer<std::string> missing = combine_address_answers(without(Status::not_found, "x", 60),
                                                        without(Status::not_found, "x", 30));
  CHECK(missing.status == Status::not_found);
  CHECK(missing.error == "x");
  CHECK(missing.ttl_seconds == 30);
}

TEST_CASE("IP literals are recognised, host names are not", "[dns]") {
  CHECK(ip_literal_answer("192.0.2.1")->records == std::vector<std::string>{"192.0.2.1"});
  CHECK(ip_literal_answer("::1")->status == Status::ok);
  CHECK_FALSE(ip_literal_answer("mx.example.test").has_value());
  CHECK_FALSE(ip_literal_answer("[192.0.2.1]").has_value());
  CHECK_FALSE(ip_literal_answer("").has_value());
}
