// Unit tests for the settings about stokend as a system service
// (mta/config/service_sections.cc): user, group, allow_root and the maildir
// section; defaults, values and errors at their place.
#include <catch2/catch.hpp>
#include <string>

#include "mta/config/config.h"
#include "tests/unit/config_fixture.h"

using stokend::testing::all_errors;
using stokend::testing::LoadedText;
using stokend::testing::minimal_config;
using namespace stokend;

TEST_CASE("service settings default to staying who started, 0600 and 0700", "[config][service]") {
  const LoadedText loaded(minimal_config);
  REQUIRE(loaded.result.config);
  const Config& config = *loaded.result.config;
  CHECK(config.user.empty());
  CHECK(config.group.empty());
  CHECK_FALSE(config.allow_root);
  CHECK(config.maildir.owner.empty());
  CHECK(config.maildir.group.empty());
  CHECK(config.maildir.file_mode == 0600);
  CHECK(config.maildir.directory_mode == 0700);
}

TEST_CASE("service settings load", "[config][service]") {
  // root and its group exist on every system the tests run on.
  const LoadedText loaded(minimal_config +
                          "user: root\ngroup: root\nallow_root: true\n"
                          "maildir: {owner: root, group: root, file_mode: \"0660\",\n"
                          "          directory_mode: 2770}\n");
  INFO(all_errors(loaded.result));
  REQUIRE(loaded.result.config);
  const Config& config = *loaded.result.config;
  CHECK(config.user == "root");
  CHECK(config.group == "root");
  CHECK(config.allow_root);
  CHECK(config.maildir.owner == "root");
  CHECK(config.maildir.group == "root");
  CHECK(config.maildir.file_mode == 0660);
  CHECK(config.maildir.directory_mode == 02770);
}

TEST_CASE("bad service settings are reported at their place", "[config][service]") {
  // The minimal config has 3 lines, so the key under test is on line 4.
  const auto [text, expected] = GENERATE(table<std::string, std::string>({
      {"user: no-such-user-x\n", "4:7: user: no user named 'no-such-user-x' on this system"},
      {"group: no-such-group-x\n", "4:8: group: no group named 'no-such-group-x' on this system"},
      {"allow_root: maybe\n", "4:13: allow_root: expected true or false, got 'maybe'"},
      {"maildir: {file_mode: \"0999\"}\n",
       "4:22: maildir.file_mode: expected an octal mode such as 0640, got '0999'"},
      {"maildir: {file_mode: 0400}\n",
       "4:22: maildir.file_mode: the owner must keep read and write (0600)"},
      {"maildir: {file_mode: 2660}\n",
       "4:22: maildir.file_mode: no set-group-id bit on mail files"},
      {"maildir: {directory_mode: 4770}\n",
       "4:27: maildir.directory_mode: expected an octal mode such as 0640, got '4770'"},
      {"maildir: {directory_mode: 0660}\n",
       "4:27: maildir.directory_mode: the owner must be able to enter (0700)"},
      {"maildir: {owner: no-such-user-x}\n",
       "4:18: maildir.owner: no user named 'no-such-user-x' on this system"},
  }));
  const LoadedText loaded(minimal_config + text);
  CHECK(loaded.only_error() == expected);
}
