// Unit tests for the Dovecot clients (mta/auth/dovecot_auth_client.h,
// mta/auth/dovecot_userdb.h) against a scripted server on a unix socket
// (tests/support/scripted_dovecot.h): the handshake and the mechanisms
// offered, an exchange with its lines as Dovecot must see them, answers
// only ever after the call, temporary failures for silence, garbage and a
// missing server, the reconnect, and the userdb's cache.
#include <catch2/catch.hpp>
#include <chrono>
#include <optional>

#include "mta/auth/dovecot_auth_client.h"
#include "mta/auth/dovecot_protocol.h"
#include "mta/auth/dovecot_userdb.h"
#include "tests/support/scripted_dovecot.h"
#include "tests/support/temporary_directory.h"
#include "tests/support/test_loop.h"

using namespace stokend;
using namespace std::chrono_literals;
using testing::ScriptedDovecot;
using testing::TemporaryDirectory;
using testing::TestLoop;

namespace {

const std::string auth_greeting =
    "VERSION\t1\t2\nMECH\tPLAIN\tplaintext\nMECH\tLOGIN\tplaintext\n"
    "MECH\tANONYMOUS\tanonymous\nMECH\tSCRAM-SHA-1-PLUS\tmutual-auth\nMECH\tCRAM-MD5\tdictionary\n"
    "SPID\t1\nCUID\t1\nCOOKIE\t00\nDONE\n";
const std::string userdb_greeting = "VERSION\t1\t1\nSPID\t1\n";

auth::DovecotEndpoint endpoint_at(const std::filesystem::path& path) {
  auth::DovecotEndpoint endpoint;
  endpoint.unix_path = path.string();
  return endpoint;
}

std::string field_after(const std::string& line, std::size_t index) {
  return auth::split_fields(line).at(index);
}

}  // namespace

TEST_CASE("Dovecot auth: handshake, PLAIN accepted as Dovecot's user", "[dovecot]") {
  TemporaryDirectory directory;
  TestLoop loop;
  const auto socket = directory.path() / "auth-client";
  ScriptedDovecot server(loop.base(), socket, auth_greeting, [](const std::string& line) {
    if (!line.starts_with("AUTH\t")) return std::string();
    return "OK\t" + field_after(line, 1) + "\tuser=alice@example.test\n";
  });
  REQUIRE(server.listening());
  auth::DovecotAuthClient client(loop.base(), endpoint_at(socket), 2s);
  CHECK(client.mechanisms() == std::vector<std::string>{"PLAIN", "LOGIN"});  // before any handshake
  client.start();
  REQUIRE(loop.run_until([&] { return client.mechanisms().size() == 3; }));
  CHECK(client.mechanisms() == std::vector<std::string>{"PLAIN", "LOGIN", "CRAM-MD5"});

  std::optional<auth::SaslStep> step;
  auth::SaslStart start{"PLAIN", "AGFsaWNlAHNlY3JldA==", "", "S1", true};
  client.begin(start, [&](const auth::SaslStep& answer) { step = answer; });
  CHECK_FALSE(step);  // never inside begin()
  REQUIRE(loop.run_until([&] { return step.has_value(); }));
  CHECK(step->kind == auth::SaslStep::Kind::ok);
  CHECK(step->text == "alice@example.test");
  CHECK(server.received().at(0) == "VERSION\t1\t2");
  CHECK(server.received().at(1).starts_with("CPID\t"));
  const std::string& request = server.received().at(2);
  CHECK(request.starts_with("AUTH\t1\tPLAIN\tservice=smtp\tnologin\tsecured\tsession=S1\t"));
  CHECK(request.ends_with("\tresp=AGFsaWNlAHNlY3JldA=="));
  CHECK(client.exchanges() == 0);
}

TEST_CASE("Dovecot auth: a challenge, the client's answer, and FAIL", "[dovecot]") {
  TemporaryDirectory directory;
  TestLoop loop;
  const auto socket = directory.path() / "auth-client";
  ScriptedDovecot server(loop.base(), socket, auth_greeting, [](const std::string& line) {
    const auto fields = auth::split_fields(line);
    if (fields[0] == "AUTH") return "CONT\t" + fields[1] + "\tVXNlcm5hbWU6\n";
    if (fields[0] == "CONT") return "FAIL\t" + fields[1] + "\tuser=bob@example.test\n";
    return std::string();
  });
  auth::DovecotAuthClient client(loop.base(), endpoint_at(socket), 2s);
  client.start();
  std::vector<auth::SaslStep> steps;
  const auto id = client.begin({"LOGIN", std::nullopt, "", "", true},
                               [&](const auth::SaslStep& step) { steps.push_back(step); });
  REQUIRE(loop.run_until([&] { return steps.size() == 1; }));
  CHECK(steps[0].kind == auth::SaslStep::Kind::challenge);
  CHECK(steps[0].text == "VXNlcm5hbWU6");
  client.respond(id, "Ym9i");
  REQUIRE(loop.run_until([&] { return steps.size() == 2; }));
  CHECK(steps[1].kind == auth::SaslStep::Kind::failure);
  CHECK(steps[1].text == "bob@example.test");
  CHECK(server.received().back() == "CONT\t" + std::to_string(id) + "\tYm9i");
}

TEST_CASE("Dovecot auth: silence, garbage and no server are temporary failures", "[dovecot]") {
  TemporaryDirectory directory;
  TestLoop loop;
  const auto socket = directory.path() / "auth-client";
  std::string answer;  // what the server says to AUTH
  ScriptedDovecot server(loop.base(), socket, auth_greeting, [&](const std::string& line) {
    return line.starts_with("AUTH\t") ? answer : std::string();
  });
  auth::DovecotAuthClient client(loop.base(), endpoint_at(socket), 300ms);
  client.start();
  REQUIRE(loop.run_until([&] { return client.mechanisms().size() == 3; }));
  auto ask = [&] {
    std::optional<auth::SaslStep> step;
    client.begin({"PLAIN", "AGEAYg==", "", "", true},
                 [&](const auth::SaslStep& answer_step) { step = answer_step; });
    REQUIRE(loop.run_until([&] { return step.has_value(); }, 3s));
    return step->kind;
  };
  SECTION("no answer within the timeout") {
    CHECK(ask() == auth::SaslStep::Kind::temporary_failure);
  }
  SECTION("a reply that does not parse, then a reconnect") {
    answer = "OK\tnot-a-number\tuser=mallory\n";
    CHECK(ask() == auth::SaslStep::Kind::temporary_failure);
    REQUIRE(loop.run_until([&] { return server.connections() == 2; }));
  }
  SECTION("FAIL with temp") {
    answer = "FAIL\t1\ttemp\treason=db down\n";
    CHECK(ask() == auth::SaslStep::Kind::temporary_failure);
  }
  SECTION("the server went away") {
    server.drop();
    loop.run_for(100ms);  // the client sees the connection close
    CHECK(ask() == auth::SaslStep::Kind::temporary_failure);
  }
}

TEST_CASE("Dovecot auth: abandoned exchanges never call back", "[dovecot]") {
  TemporaryDirectory directory;
  TestLoop loop;
  const auto socket = directory.path() / "auth-client";
  ScriptedDovecot server(loop.base(), socket, auth_greeting, [](const std::string& line) {
    if (!line.starts_with("AUTH\t")) return std::string();
    return "OK\t" + field_after(line, 1) + "\tuser=alice@example.test\n";
  });
  auth::DovecotAuthClient client(loop.base(), endpoint_at(socket), 2s);
  client.start();
  bool called = false;
  const auto id = client.begin({"PLAIN", "AGEAYg==", "", "", true},
                               [&](const auth::SaslStep&) { called = true; });
  client.abandon(id);
  loop.run_until([&] { return server.received().size() >= 3; });
  loop.run_for(100ms);
  CHECK_FALSE(called);
  CHECK(client.exchanges() == 0);
}

TEST_CASE("Dovecot userdb: found, unknown, cached, and failures", "[dovecot]") {
  TemporaryDirectory directory;
  TestLoop loop;
  const auto socket = directory.path() / "auth-userdb";
  ScriptedDovecot server(loop.base(), socket, userdb_greeting, [](const std::string& line) {
    const auto fields = auth::split_fields(line);
    if (fields[0] != "USER") return std::string();
    if (fields[2] == "alice@example.test") {
      return "USER\t" + fields[1] + "\talice\thome=/h\tcoi_filter=active\n";
    }
    if (fields[2] == "broken@example.test") return "FAIL\t" + fields[1] + "\treason=x\n";
    return "NOTFOUND\t" + fields[1] + "\n";
  });
  auth::DovecotUserdb userdb(loop.base(), endpoint_at(socket), 60s, 2s);
  userdb.start();
  auto lookup = [&](const std::string& address) {
    std::optional<UserAnswer> later;
    auto now = userdb.lookup(address, [&](const UserAnswer& answer) { later = answer; });
    if (now) return *now;
    REQUIRE(loop.run_until([&] { return later.has_value(); }));
    return *later;
  };
  const auto alice = lookup("Alice@Example.test");
  CHECK(alice.status == UserAnswer::Status::found);
  CHECK(alice.user.address == "alice@example.test");
  CHECK(alice.user.coi_filter == CoiFilter::active);
  CHECK(lookup("nobody@example.test").status == UserAnswer::Status::unknown);
  CHECK(lookup("broken@example.test").status == UserAnswer::Status::temporary_failure);
  const std::size_t asked = server.received().size();
  // Cached: answered at once, Dovecot not asked again.
  CHECK(userdb.lookup("alice@example.test", [](const UserAnswer&) {}));
  CHECK(userdb.lookup("nobody@example.test", [](const UserAnswer&) {}));
  REQUIRE(userdb.find("ALICE@example.test"));
  CHECK_FALSE(userdb.find("nobody@example.test"));
  // A temporary failure is not cached.
  CHECK_FALSE(userdb.lookup("broken@example.test", [](const UserAnswer&) {}));
  loop.run_for(50ms);
  CHECK(server.received().size() == asked + 1);
  CHECK(server.received()[1] == "USER\t1\talice@example.test\tservice=smtp");
}

TEST_CASE("Dovecot userdb: no server is a temporary failure, later", "[dovecot]") {
  TemporaryDirectory directory;
  TestLoop loop;
  auth::DovecotUserdb userdb(loop.base(), endpoint_at(directory.path() / "missing"), 60s, 2s);
  userdb.start();
  std::optional<UserAnswer> later;
  CHECK_FALSE(userdb.lookup("alice@example.test", [&](const UserAnswer& a) { later = a; }));
  CHECK_FALSE(later);
  REQUIRE(loop.run_until([&] { return later.has_value(); }));
  CHECK(later->status == UserAnswer::Status::temporary_failure);
}
