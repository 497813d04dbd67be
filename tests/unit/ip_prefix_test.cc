// IpPrefix (common/ip_prefix.h): parsing addresses and networks, and which
// addresses a prefix contains.
#include "common/ip_prefix.h"

#include <catch2/catch.hpp>

using stokend::IpPrefix;

TEST_CASE("prefixes parse from addresses and networks", "[ip_prefix]") {
  CHECK(IpPrefix::parse("127.0.0.1")->to_string() == "127.0.0.1/32");
  CHECK(IpPrefix::parse("10.1.2.3/16")->to_string() == "10.1.0.0/16");
  CHECK(IpPrefix::parse("::1")->to_string() == "::1/128");
  CHECK(IpPrefix::parse("2001:db8::17/33")->to_string() == "2001:db8::/33");
  CHECK(IpPrefix::parse("0.0.0.0/0")->to_string() == "0.0.0.0/0");
  for (const char* bad :
       {"", "/8", "10.0.0.0/", "10.0.0.0/33", "::/129", "10.0.0.0/-1", "10.0.0.0/8/8", "10.0.0",
        "example.org", "10.0.0.0 /8", "10.0.0.0/0008", "[::1]"}) {
    CAPTURE(bad);
    CHECK_FALSE(IpPrefix::parse(bad));
  }
}

TEST_CASE("a prefix contains the addresses of its network only", "[ip_prefix]") {
  const auto network = *IpPrefix::parse("10.1.0.0/16");
  CHECK(network.contains("10.1.0.0"));
  CHECK(network.contains("10.1.255.254"));
  CHECK_FALSE(network.contains("10.2.0.1"));
  CHECK_FALSE(network.contains("not an address"));
  CHECK_FALSE(network.contains("::1"));
  // A dual-stack socket reports IPv4 clients as mapped IPv6 addresses.
  CHECK(network.contains("::ffff:10.1.3.4"));
  CHECK_FALSE(network.contains("::ffff:10.2.3.4"));

  const auto odd = *IpPrefix::parse("192.0.2.128/25");
  CHECK(odd.contains("192.0.2.200"));
  CHECK_FALSE(odd.contains("192.0.2.127"));

  const auto host = *IpPrefix::parse("::1");
  CHECK(host.contains("0:0:0:0:0:0:0:1"));
  CHECK_FALSE(host.contains("::2"));
  CHECK_FALSE(host.contains("127.0.0.1"));

  const auto v6 = *IpPrefix::parse("2001:db8::/33");
  CHECK(v6.contains("2001:db8:7fff::1"));
  CHECK_FALSE(v6.contains("2001:db8:8000::1"));
  CHECK(IpPrefix::parse("0.0.0.0/0")->contains("203.0.113.9"));
}
