// Unit tests for address rewriting (mta/addresses/): address extensions,
// the aliases map's parser, lookup order, recursive expansion and its
// limits, the aliases file's reloading, and the lookup of local users with
// an extension.
#include <catch2/catch.hpp>
#include <filesystem>
#include <map>
#include <string>
#include <thread>

#include "message/address.h"
#include "mta/addresses/alias_file.h"
#include "mta/addresses/alias_map.h"
#include "mta/addresses/local_users.h"
#include "mta/addresses/recipient_delimiter.h"
#include "mta/store/maildir_store.h"
#include "tests/support/temporary_directory.h"

using namespace stokend;
using namespace stokend::addresses;
using stokend::testing::read_whole_file;
using stokend::testing::TemporaryDirectory;
using stokend::testing::write_whole_file;

namespace {

constexpr ExpansionLimits limits{16, 1000};

AliasMap parsed(std::string_view text) {
  AliasParseResult result = AliasMap::parse(text, "aliases", 4096);
  INFO((result.errors.empty() ? std::string() : result.errors.front()));
  REQUIRE(result.map);
  return std::move(*result.map);
}

std::vector<std::string> errors_of(std::string_view text) {
  return AliasMap::parse(text, "aliases", 4096).errors;
}

// A directory of users that answers later, or at once, as the test says.
class TestUsers : public UserLookup {
 public:
  std::map<std::string, User> users;
  bool answer_later = false;
  std::vector<std::string> asked;
  std::vector<std::pair<std::string, AnswerCallback>> pending;

  bool refresh_if_changed() override { return false; }
  const User* find(std::string_view address) const override {
    auto found = users.find(std::string(address));
    return found == users.end() ? nullptr : &found->second;
  }
  std::optional<UserAnswer> lookup(const std::string& address, AnswerCallback done) override {
    asked.push_back(address);
    if (answer_later) {
      pending.emplace_back(address, std::move(done));
      return std::nullopt;
    }
    return UserLookup::lookup(address, std::move(done));
  }
  void answer_next() {
    auto [address, done] = std::move(pending.front());
    pending.erase(pending.begin());
    const User* user = find(address);
    done(user ? UserAnswer{UserAnswer::Status::found, *user} : UserAnswer{});
  }
};

}  // namespace

TEST_CASE("an extension is split at the first delimiter of the local part", "[addresses]") {
  auto split = split_extension("alice+news@example.test", "+");
  REQUIRE(split);
  CHECK(split->base == "alice@example.test");
  CHECK(split->suffix == "+news");
  split = split_extension("alice-a+b@example.test", "+-");
  REQUIRE(split);
  CHECK(split->base == "alice@example.test");
  CHECK(split->suffix == "-a+b");
  CHECK_FALSE(split_extension("alice+news@example.test", ""));  // off
  CHECK_FALSE(split_extension("alice@example.test", "+"));
  CHECK_FALSE(split_extension("+news@example.test", "+"));  // nobody's extension
  CHECK_FALSE(split_extension("alice@a+b.test", "+"));      // the domain has none
  CHECK(with_extension("alice@example.test", "alice+news@example.test", "+") ==
        "alice+news@example.test");
  CHECK(with_extension("alice@example.test", "alice@example.test", "+") == "alice@example.test");
  CHECK(belongs_to("alice+news@example.test", "alice@example.test", "+"));
  CHECK(belongs_to("alice@example.test", "alice@example.test", ""));
  CHECK_FALSE(belongs_to("alice+news@example.test", "alice@example.test", ""));
  CHECK_FALSE(belongs_to("alicex@example.test", "alice@example.test", "+"));
}

TEST_CASE("a user is found by the address, then by the address without extension", "[addresses]") {
  TestUsers users;
  users.users["alice@example.test"] = User{"alice@example.test", "", CoiFilter::off};
  users.users["bob+x@example.test"] = User{"bob+x@example.test", "", CoiFilter::off};
  CHECK(find_local_user(users, "alice+news@example.test", "+")->address == "alice@example.test");
  CHECK(find_local_user(users, "alice+news@example.test", "") == nullptr);
  CHECK(find_local_user(users, "bob+x@example.test", "+")->address == "bob+x@example.test");
  CHECK(delivery_address(users.users["alice@example.test"], "alice+news@example.test", "+") ==
        "alice+news@example.test");
  CHECK(delivery_address(users.users["bob+x@example.test"], "bob+x@example.test", "+") ==
        "bob+x@example.test");

  SECTION("answered at once") {
    bool called = false;
    auto answer = lookup_local_user(users, "alice+news@example.test", "+",
                                    [&](const UserAnswer&) { called = true; });
    REQUIRE(answer);
    CHECK(answer->status == UserAnswer::Status::found);
    CHECK(answer->user.address == "alice@example.test");
    CHECK(users.asked == std::vector<std::string>{"alice+news@example.test", "alice@example.test"});
    CHECK_FALSE(called);
  }
  SECTION("answered later: the second question follows the first answer") {
    users.answer_later = true;
    std::optional<UserAnswer> later;
    auto answer = lookup_local_user(users, "alice+news@example.test", "+",
                                    [&](const UserAnswer& a) { later = a; });
    CHECK_FALSE(answer);
    users.answer_next();  // alice+news: unknown, so alice is asked
    CHECK_FALSE(later);
    REQUIRE(users.pending.size() == 1);
    CHECK(users.pending.front().first == "alice@example.test");
    users.answer_next();
    REQUIRE(later);
    CHECK(later->status == UserAnswer::Status::found);
    CHECK(later->user.address == "alice@example.test");
  }
  SECTION("an unknown base is unknown") {
    auto answer = lookup_local_user(users, "carol+x@example.test", "+", [](const UserAnswer&) {});
    REQUIRE(answer);
    CHECK(answer->status == UserAnswer::Status::unknown);
  }
}

TEST_CASE("the aliases file's lines are parsed like virtual(5)", "[addresses]") {
  const AliasMap map = parsed(
      "# a comment\n"
      "\n"
      "Team@Example.test   alice@example.test, bob@example.test\n"
      "list@example.test carol@example.test,dave@elsewhere.test\n"
      "   erin@elsewhere.test\n"
      "\"first last\"@example.test alice@example.test\r\n"
      "@example.test catchall@example.test\n");
  CHECK(map.size() == 4);
  REQUIRE(map.find("team@example.test", "", false));
  CHECK(*map.find("team@example.test", "", false) ==
        std::vector<std::string>{"alice@example.test", "bob@example.test"});
  CHECK(
      *map.find("list@example.test", "", false) ==
      std::vector<std::string>{"carol@example.test", "dave@elsewhere.test", "erin@elsewhere.test"});
  // Keys are normalised as the session normalises a RCPT address.
  CHECK(map.find(message::parse_mailbox("\"First Last\"@example.test")->normalized(), "", false));
}

TEST_CASE("a bad line of the aliases file is named by file and line", "[addresses]") {
  CHECK(errors_of("a@example.test\n") ==
        std::vector<std::string>{"aliases:1: a@example.test has no target"});
  CHECK(
      errors_of("# c\nnot-an-address b@example.test\n") ==
      std::vector<std::string>{"aliases:2: key 'not-an-address' is not an address (local@domain)"});
  CHECK(errors_of("a@example.test bob\n") ==
        std::vector<std::string>{"aliases:1: target 'bob' is not an address (local@domain)"});
  CHECK(errors_of("a@example.test b@example.test\nA@example.test c@example.test\n") ==
        std::vector<std::string>{"aliases:2: a@example.test is already a key on line 1"});
  CHECK(errors_of("  b@example.test\n") ==
        std::vector<std::string>{"aliases:1: continuation line without a line to continue"});
  CHECK(errors_of("a@example.test \"b@example.test\n") ==
        std::vector<std::string>{"aliases:1: unterminated quoted local part"});
  CHECK(errors_of("a@example.test b@[192.0.2.1]\n") ==
        std::vector<std::string>{
            "aliases:1: target 'b@[192.0.2.1]': address literals are not supported"});
  CHECK(errors_of("a@example.test @example.test\n").size() == 1);
  // Found by fuzz_aliases: a line of separators only.
  CHECK(errors_of(",\n") == std::vector<std::string>{"aliases:1: no key"});
  CHECK(errors_of(std::string("a@example.test b@example.test\x01\n")) ==
        std::vector<std::string>{"aliases:1: control character in the line"});
  CHECK(errors_of("a@example.test " + std::string(5000, 'b') + "@example.test\n") ==
        std::vector<std::string>{"aliases:1: line longer than 4096 octets"});
  // Every bad line, not only the first; no map from a file with any.
  const auto result = AliasMap::parse("x y\ngood@example.test a@example.test\nz\n", "f", 4096);
  CHECK(result.errors.size() == 2);
  CHECK_FALSE(result.map);
}

TEST_CASE("lookup: the address, then without extension, then the catch-all", "[addresses]") {
  const AliasMap map = parsed(
      "alice+news@example.test news@example.test\n"
      "alice@example.test  alice-box@example.test\n"
      "@example.test       catchall@example.test\n");
  CHECK(*map.find("alice+news@example.test", "+", true) ==
        std::vector<std::string>{"news@example.test"});
  CHECK(*map.find("alice+other@example.test", "+", true) ==
        std::vector<std::string>{"alice-box@example.test"});
  // Without a delimiter the extended address is nobody's but the catch-all's.
  CHECK(*map.find("alice+other@example.test", "", true) ==
        std::vector<std::string>{"catchall@example.test"});
  CHECK(map.find("alice+other@example.test", "", false) == nullptr);
  CHECK(*map.find("zed@example.test", "+", true) ==
        std::vector<std::string>{"catchall@example.test"});
  CHECK(map.find("zed@other.test", "+", true) == nullptr);
}

TEST_CASE("expansion follows aliases recursively, each address once", "[addresses]") {
  const AliasMap map = parsed(
      "team@example.test   alice@example.test, devs@example.test\n"
      "devs@example.test   bob@example.test, alice@example.test, ext@elsewhere.test\n"
      "self@example.test   self@example.test, copy@example.test\n"
      "both@example.test   devs@example.test, team@example.test\n");
  Expansion expansion = map.expand("Team@Example.test", "", false, limits);
  CHECK(expansion.status == Expansion::Status::expanded);
  CHECK(expansion.recipients ==
        std::vector<std::string>{"alice@example.test", "bob@example.test", "ext@elsewhere.test"});
  // A target equal to its key keeps a copy for it (Postfix's "a -> a, b").
  expansion = map.expand("self@example.test", "", false, limits);
  CHECK(expansion.status == Expansion::Status::expanded);
  CHECK(expansion.recipients == std::vector<std::string>{"self@example.test", "copy@example.test"});
  // Reaching one alias twice by two ways is no loop.
  expansion = map.expand("both@example.test", "", false, limits);
  CHECK(expansion.status == Expansion::Status::expanded);
  CHECK(expansion.recipients.size() == 3);
  CHECK(map.expand("alice@example.test", "", false, limits).status ==
        Expansion::Status::not_aliased);
}

TEST_CASE("an alias loop stops the expansion and is found when the map is made", "[addresses]") {
  const AliasMap map = parsed(
      "a@example.test  b@example.test\n"
      "b@example.test  c@example.test, x@example.test\n"
      "c@example.test  a+tag@example.test\n"
      "ok@example.test x@example.test\n");
  // The loop goes through an extension: only with the delimiter.
  CHECK(map.expand("a@example.test", "", false, limits).status == Expansion::Status::expanded);
  const Expansion expansion = map.expand("a@example.test", "+", false, limits);
  CHECK(expansion.status == Expansion::Status::loop);
  CHECK(expansion.recipients.empty());  // nothing to deliver from a broken expansion
  // a+tag is a's by its extension, and a leads back to b.
  CHECK(describe_chain(expansion.chain) ==
        "a@example.test -> b@example.test -> c@example.test -> a+tag@example.test -> "
        "b@example.test");
  const auto found = map.problems("+", limits);
  REQUIRE(found.size() == 1);
  CHECK(describe_chain(found[0].chain) ==
        "b@example.test -> c@example.test -> a+tag@example.test -> b@example.test");
  CHECK(map.expand("ok@example.test", "+", false, limits).status == Expansion::Status::expanded);

  const AliasMap plain = parsed(
      "a@example.test  b@example.test\n"
      "b@example.test  a@example.test\n"
      "c@example.test  a@example.test\n");
  const auto problems = plain.problems("", limits);
  REQUIRE(problems.size() == 1);  // one loop, reported once
  CHECK(problems[0].line == 1);
  CHECK(describe_chain(problems[0].chain) == "a@example.test -> b@example.test -> a@example.test");
}

TEST_CASE("expansion is bounded in depth and in addresses", "[addresses]") {
  std::string chain;
  for (int i = 0; i < 20; ++i) {
    chain +=
        "a" + std::to_string(i) + "@example.test a" + std::to_string(i + 1) + "@example.test\n";
  }
  const AliasMap deep = parsed(chain);
  CHECK(deep.expand("a15@example.test", "", false, limits).status == Expansion::Status::expanded);
  const Expansion too_deep = deep.expand("a0@example.test", "", false, limits);
  CHECK(too_deep.status == Expansion::Status::too_deep);
  CHECK(too_deep.recipients.empty());
  CHECK(too_deep.chain.size() == 17);
  CHECK_FALSE(deep.problems("", limits).empty());

  const AliasMap wide = parsed(
      "list@example.test a@example.test b@example.test c@example.test\n"
      "two@example.test a@example.test b@example.test a@example.test\n");
  CHECK(wide.expand("list@example.test", "", false, {16, 3}).status == Expansion::Status::expanded);
  const Expansion too_many = wide.expand("list@example.test", "", false, {16, 2});
  CHECK(too_many.status == Expansion::Status::too_many);
  CHECK(too_many.recipients.empty());
  // A repeated address counts once.
  CHECK(wide.expand("two@example.test", "", false, {16, 2}).status == Expansion::Status::expanded);
}

TEST_CASE("the aliases file keeps its map on a bad edit and reloads a good one", "[addresses]") {
  TemporaryDirectory directory;
  const auto file = directory.path() / "aliases";
  write_whole_file(file, "team@example.test alice@example.test\n");
  AliasFile aliases(file);
  CHECK(aliases.load("+").empty());
  CHECK(aliases.map().find("team@example.test", "", false));

  // Changed: refresh_if_changed() looks at most once a second.
  std::this_thread::sleep_for(std::chrono::milliseconds(1100));
  write_whole_file(file, "team@example.test alice@example.test\nbroken\n");
  CHECK_FALSE(aliases.refresh_if_changed("+"));
  CHECK(aliases.map().find("team@example.test", "", false));  // the old map stays
  const auto errors = aliases.load("+");
  REQUIRE(errors.size() == 1);
  CHECK(errors[0] == file.string() + ":2: key 'broken' is not an address (local@domain)");

  write_whole_file(file, "a@example.test b@example.test\nb@example.test a@example.test\n");
  CHECK(aliases.load("").empty());
  CHECK(aliases.map().find("a@example.test", "", false));
  REQUIRE(aliases.describe_problems().size() == 1);
  CHECK(aliases.describe_problems()[0].find(":1: alias loop: a@example.test -> b@example.test -> "
                                            "a@example.test") != std::string::npos);

  AliasFile missing(directory.path() / "none");
  REQUIRE(missing.load("").size() == 1);
  CHECK(missing.load("")[0].find("cannot read") != std::string::npos);
}

TEST_CASE("the Maildir writes Delivered-To above the message when asked, and counts it",
          "[addresses][maildir]") {
  TemporaryDirectory root;
  store::MaildirStore maildir(root.path(), "mx.example.test");
  const std::string message = "Received: from a\r\n\tby b;\r\n\tdate\r\nSubject: s\r\n\r\nbody\r\n";
  store::Recipient alice{"alice", "example.test", false, "alice+news@example.test"};
  auto result = maildir.deliver(alice, message);
  REQUIRE(result.status == store::DeliveryResult::Status::delivered);
  const std::string field = "Delivered-To: alice+news@example.test\r\n";
  const auto path = root.path() / "example.test" / "alice" / "new" / result.delivery_id;
  CHECK(read_whole_file(path) == field + message);
  // The Maildir name's S= is the size on disk (Maildir++ quota readers trust it).
  CHECK(result.delivery_id.find(",S=" + std::to_string(field.size() + message.size())) !=
        std::string::npos);
  // Without an address, the message as it is.
  result = maildir.deliver({"alice", "example.test", false, {}}, message);
  REQUIRE(result.status == store::DeliveryResult::Status::delivered);
  CHECK(read_whole_file(root.path() / "example.test" / "alice" / "new" / result.delivery_id) ==
        message);
}
