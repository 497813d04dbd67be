// Unit tests for the milters section of stokend.yaml (mta/config/
// milter_section.cc): values, defaults, order, and each error at its place.
#include <catch2/catch.hpp>
#include <chrono>
#include <string>

#include "mta/config/config.h"
#include "tests/unit/config_fixture.h"

using stokend::testing::all_errors;
using stokend::testing::LoadedText;
using stokend::testing::minimal_config;
using namespace std::chrono_literals;
using namespace stokend;

TEST_CASE("milters load in order with their defaults", "[milter]") {
  const LoadedText loaded(
      minimal_config +
      "milters:\n"
      "  - name: rspamd\n"
      "    address: inet:127.0.0.1:11332\n"
      "  - {name: dkim, address: \"unix:/run/opendkim.sock\", roles: [submission],\n"
      "     connect_timeout: 2s, command_timeout: 500ms, default_action: accept}\n"
      "  - {name: six, address: \"inet:[::1]:8891\", roles: [mx], default_action: reject}\n");
  INFO(all_errors(loaded.result));
  REQUIRE(loaded.result.config);
  const auto& milters = loaded.result.config->milters;
  REQUIRE(milters.size() == 3);
  CHECK(milters[0].name == "rspamd");
  CHECK_FALSE(milters[0].unix_socket);
  CHECK(milters[0].host == "127.0.0.1");
  CHECK(milters[0].port == 11332);
  CHECK(milters[0].mx);
  CHECK(milters[0].submission);
  CHECK(milters[0].connect_timeout == defaults::milter_connect_timeout);
  CHECK(milters[0].command_timeout == defaults::milter_command_timeout);
  CHECK(milters[0].default_action == MilterDefaultAction::tempfail);
  CHECK(milters[1].unix_socket);
  CHECK(milters[1].path == "/run/opendkim.sock");
  CHECK_FALSE(milters[1].mx);
  CHECK(milters[1].submission);
  CHECK(milters[1].connect_timeout == 2s);
  CHECK(milters[1].command_timeout == 500ms);
  CHECK(milters[1].default_action == MilterDefaultAction::accept);
  CHECK(milters[2].host == "::1");
  CHECK(milters[2].port == 8891);
  CHECK_FALSE(milters[2].submission);
  CHECK(milters[2].default_action == MilterDefaultAction::reject);
}

TEST_CASE("no milters section means no milters", "[milter]") {
  const LoadedText loaded(minimal_config);
  REQUIRE(loaded.result.config);
  CHECK(loaded.result.config->milters.empty());
  const LoadedText empty(minimal_config + "milters: []\n");
  REQUIRE(empty.result.config);
  CHECK(empty.result.config->milters.empty());
}

TEST_CASE("a bad milter is reported at its place", "[milter]") {
  CHECK(LoadedText(minimal_config + "milters:\n  - {name: a, address: \"inet:localhost:25\"}\n")
            .only_error() ==
        "5:24: milters[0].address: expected inet:ADDRESS:PORT with an IP address (IPv6 in "
        "brackets: inet:[::1]:11332), got 'inet:localhost:25'");
  CHECK(LoadedText(minimal_config + "milters:\n  - {name: a, address: \"tcp:1.2.3.4:25\"}\n")
            .only_error() ==
        "5:24: milters[0].address: expected unix:PATH or inet:ADDRESS:PORT, got 'tcp:1.2.3.4:25'");
  CHECK(LoadedText(minimal_config + "milters:\n  - {name: a, address: \"unix:\"}\n").only_error() ==
        "5:24: milters[0].address: unix: needs a socket path");
  CHECK(LoadedText(minimal_config + "milters:\n  - {address: \"unix:/x\"}\n").only_error() ==
        "5:5: missing required key 'name' in milters[0]");
  CHECK(LoadedText(minimal_config +
                   "milters:\n  - {name: a, address: \"unix:/x\", default_action: drop}\n")
            .only_error() ==
        "5:51: milters[0].default_action: unknown action 'drop' (expected tempfail, accept or "
        "reject)");
  CHECK(LoadedText(minimal_config + "milters:\n  - {name: a, address: \"unix:/x\", roles: [pop]}\n")
            .only_error() ==
        "5:43: milters[0].roles[0]: unknown role 'pop' (expected mx or submission)");
  CHECK(LoadedText(minimal_config + "milters:\n  - {name: a, address: \"unix:/x\"}\n"
                                    "  - {name: a, address: \"unix:/y\"}\n")
            .only_error() == "6:12: milters[1].name: 'a' is named twice");
  CHECK(LoadedText(minimal_config + "milters: {name: a}\n").only_error() ==
        "4:10: milters: expected a list of milters, got a map");
}
