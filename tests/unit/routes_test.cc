// Route parsing and lookup (mta/routes.h).
#include "mta/routes.h"

#include <catch2/catch.hpp>

using stokend::parse_route;
using stokend::Route;
using stokend::RouteTable;

namespace {
Route parsed(std::string_view text) {
  std::string error;
  auto route = parse_route(text, error);
  INFO(error);
  REQUIRE(route);
  return *route;
}
std::string refusal(std::string_view text) {
  std::string error;
  CHECK_FALSE(parse_route(text, error));
  return error;
}
}  // namespace

TEST_CASE("routes parse every transport", "[routes]") {
  CHECK(parsed("maildir").transport == Route::Transport::maildir);
  CHECK(parsed("mx").transport == Route::Transport::mx);
  auto unix_lmtp = parsed("lmtp:unix:/run/dovecot/lmtp");
  CHECK(unix_lmtp.transport == Route::Transport::lmtp);
  CHECK(unix_lmtp.next_hop.unix_path == "/run/dovecot/lmtp");
  auto tcp_lmtp = parsed("lmtp:[127.0.0.1]:24");
  CHECK(tcp_lmtp.next_hop.host == "127.0.0.1");
  CHECK(tcp_lmtp.next_hop.port == 24);
  CHECK(tcp_lmtp.next_hop.protocol == stokend::Protocol::lmtp);
  auto smtp = parsed("smtp:[::1]:2526");
  CHECK(smtp.transport == Route::Transport::smtp);
  CHECK(smtp.next_hop.host == "::1");
  CHECK(smtp.next_hop.protocol == stokend::Protocol::smtp);
  CHECK(smtp.next_hop_name.empty());
}

TEST_CASE("an smtp route may name its next hop; an lmtp route may not", "[routes]") {
  auto relay = parsed("smtp:[Relay.Example]:587");
  CHECK(relay.transport == Route::Transport::smtp);
  CHECK(relay.next_hop_name == "relay.example");
  CHECK(relay.next_hop.host.empty());
  CHECK(relay.next_hop.port == 587);
  CHECK(relay.to_string() == "smtp:[relay.example]:587");
  CHECK_THAT(refusal("lmtp:[store.example]:24"), Catch::Contains("lmtp routes use IP literals"));
  CHECK_THAT(refusal("smtp:[relay_1.example]:25"),
             Catch::Contains("'relay_1.example' is neither an IP address nor a host name"));
}

TEST_CASE("bad routes say what is wrong", "[routes]") {
  CHECK_THAT(refusal("smtp:mx.example.org:25"), Catch::Contains("expected [host]:port"));
  CHECK_THAT(refusal("lmtp:10.0.0.5:24"), Catch::Contains("expected [IP-address]:port"));
  CHECK_THAT(refusal("smtp:[10.0.0.5]:0"), Catch::Contains("port must be 1-65535"));
  CHECK_THAT(refusal("smtp:[10.0.0.5]:65536"), Catch::Contains("port must be 1-65535"));
  CHECK_THAT(refusal("smtp:[10.0.0.5]:25x"), Catch::Contains("port must be 1-65535"));
  CHECK_THAT(refusal("lmtp:unix:relative"), Catch::Contains("absolute"));
  CHECK_THAT(refusal("relay"), Catch::Contains("unknown route 'relay'"));
}

TEST_CASE("route lookup: own entry, then maildir for local, then '*', then mx", "[routes]") {
  std::map<std::string, Route> routes{{"b.test", parsed("smtp:[127.0.0.1]:2600")},
                                      {"*", parsed("smtp:[127.0.0.1]:2700")}};
  RouteTable table(routes);
  CHECK(table.route_for("B.Test", true).next_hop.port == 2600);
  CHECK(table.route_for("a.test", true).transport == Route::Transport::maildir);
  CHECK(table.route_for("c.test", false).next_hop.port == 2700);
  CHECK(RouteTable{}.route_for("c.test", false).transport == Route::Transport::mx);
}
