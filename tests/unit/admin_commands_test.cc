// Unit tests for the shape checks of stokenctl's user and queue commands
// (admin/user_admin.h, admin/queue_admin.h): which command lines are usage
// errors, and the words that tell the administrator why.
#include <catch2/catch.hpp>
#include <optional>
#include <string>
#include <vector>

#include "admin/queue_admin.h"
#include "admin/user_admin.h"

using stokend::admin::check_queue_command;
using stokend::admin::check_user_command;
using Words = std::vector<std::string>;

TEST_CASE("well-formed queue commands pass the shape check", "[admin]") {
  CHECK_FALSE(check_queue_command(Words{"queue", "list"}));
  CHECK_FALSE(check_queue_command(Words{"queue", "flush"}));
  CHECK_FALSE(check_queue_command(Words{"queue", "flush", "0123abcd"}));
  CHECK_FALSE(check_queue_command(Words{"queue", "show", "0123abcd"}));
  CHECK_FALSE(check_queue_command(Words{"queue", "delete", "0123abcd"}));
  CHECK_FALSE(check_queue_command(Words{"queue", "damaged"}));
  CHECK_FALSE(check_queue_command(Words{"queue", "requeue", "0123abcd"}));
  CHECK_FALSE(check_queue_command(Words{"queue", "requeue", "ALL"}));
  CHECK_FALSE(check_queue_command(Words{"queue", "delete", "ALL"}));
  CHECK_FALSE(check_queue_command(Words{"queue", "hold"}, {.domain = "Example.ORG"}));
}

TEST_CASE("malformed queue commands are usage errors that say why", "[admin]") {
  CHECK(check_queue_command(Words{"queue"}) ==
        "'queue' needs a subcommand: list, show, flush, hold, release, delete, requeue or "
        "damaged");
  CHECK(check_queue_command(Words{"queue", "purge"}) == "unknown subcommand 'queue purge'");
  CHECK(check_queue_command(Words{"queue", "list", "x"}) == "queue list takes no arguments");
  CHECK(check_queue_command(Words{"queue", "hold"}) ==
        "queue hold takes one queue ID, ALL or --domain DOMAIN");
  CHECK(check_queue_command(Words{"queue", "delete", "all"}) ==
        "'all' is not a queue ID (lowercase hex digits, as in queue list) or ALL");
  CHECK(check_queue_command(Words{"queue", "delete", "ALL"}, {.domain = "example.org"}) ==
        "queue delete takes a queue ID, ALL or --domain, not two");
  CHECK(check_queue_command(Words{"queue", "requeue"}, {.domain = "exa mple.org"}) ==
        "'exa mple.org' is not a domain name");
  CHECK(check_queue_command(Words{"queue", "show", "ALL"}, {.domain = "example.org"}) ==
        "--domain goes with queue hold, release, delete and requeue only");
  CHECK(check_queue_command(Words{"queue", "damaged"}, {.domain = "example.org"}) ==
        "queue damaged takes no arguments");
  CHECK(check_queue_command(Words{"queue", "flush", "a", "b"}) ==
        "queue flush takes at most one queue ID");
  CHECK(check_queue_command(Words{"queue", "show", "NOT-HEX"}) ==
        "'NOT-HEX' is not a queue ID (lowercase hex digits, as in queue list)");
  CHECK(check_queue_command(Words{"queue", "damaged", "x"}) == "queue damaged takes no arguments");
}

TEST_CASE("user commands: the shape check", "[admin]") {
  CHECK_FALSE(check_user_command(Words{"user", "add", "a@example.test"}));
  CHECK_FALSE(check_user_command(Words{"user", "list"}));
  CHECK_FALSE(check_user_command(Words{"user", "set", "a@example.test", "coi-filter", "seen"}));
  CHECK(check_user_command(Words{"user"}) == "'user' needs a subcommand: add, del, list or set");
  CHECK(check_user_command(Words{"user", "del"}) == "user del takes one ADDRESS");
  CHECK(check_user_command(Words{"user", "list", "x"}) == "user list takes no arguments");
  CHECK(check_user_command(Words{"user", "set", "a@example.test", "colour", "red"}) ==
        "unknown setting 'colour'");
  CHECK(check_user_command(Words{"user", "set", "a@example.test", "coi-filter", "on"}) ==
        "coi-filter must be off, active or seen, not 'on'");
  CHECK(check_user_command(Words{"user", "rename"}) == "unknown subcommand 'user rename'");
}
