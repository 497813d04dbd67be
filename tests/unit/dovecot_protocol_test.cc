// Unit tests for the lines of Dovecot's auth protocols (mta/auth/
// dovecot_protocol.h) and the auth: socket settings (mta/auth/
// dovecot_endpoint.h): what Dovecot 2.3 sends parses, what it must not
// send is refused with a reason, and escaping round-trips.
#include "mta/auth/dovecot_protocol.h"

#include <catch2/catch.hpp>

#include "mta/auth/dovecot_endpoint.h"

using namespace stokend::auth;

TEST_CASE("tab-escaping round-trips every special octet", "[dovecot]") {
  const std::string field = std::string("a\tb\nc\rd\001e") + '\0' + "f";
  const std::string escaped = escape_field(field);
  CHECK(escaped.find('\t') == std::string::npos);
  CHECK(escaped.find('\n') == std::string::npos);
  const auto fields = split_fields("X\t" + escaped + "\ty");
  REQUIRE(fields.size() == 3);
  CHECK(fields[1] == field);
  CHECK(fields[2] == "y");
}

TEST_CASE("Dovecot 2.3's auth client handshake parses", "[dovecot]") {
  const auto version = parse_auth_server_line("VERSION\t1\t2");
  REQUIRE(version.line);
  CHECK(version.line->kind == AuthServerLine::Kind::version);
  CHECK(version.line->major_version == 1);
  const auto mech = parse_auth_server_line("MECH\tcram-md5\tdictionary\tactive");
  REQUIRE(mech.line);
  CHECK(mech.line->mechanism == "CRAM-MD5");
  CHECK(mech.line->flags == std::vector<std::string>{"dictionary", "active"});
  CHECK(relayable_mechanism(*mech.line));
  for (const char* line : {"SPID\t5714", "CUID\t1", "COOKIE\tcf81a64b70b2748f57f47bc8ddfbccad"}) {
    INFO(line);
    CHECK(parse_auth_server_line(line).line);
  }
  CHECK(parse_auth_server_line("DONE").line->kind == AuthServerLine::Kind::done);
  CHECK(parse_auth_server_line("SOMETHING\tnew").line->kind == AuthServerLine::Kind::other);
}

TEST_CASE("mechanisms SMTP AUTH cannot carry are not relayed", "[dovecot]") {
  for (const char* line : {"MECH\tANONYMOUS\tanonymous", "MECH\tEXTERNAL", "MECH\tX\tprivate",
                           "MECH\tSCRAM-SHA-256-PLUS\tmutual-auth"}) {
    INFO(line);
    const auto parsed = parse_auth_server_line(line);
    REQUIRE(parsed.line);
    CHECK_FALSE(relayable_mechanism(*parsed.line));
  }
  for (const char* line :
       {"MECH\tPLAIN\tplaintext", "MECH\tLOGIN\tplaintext", "MECH\tSCRAM-SHA-256\tmutual-auth"}) {
    INFO(line);
    CHECK(relayable_mechanism(*parse_auth_server_line(line).line));
  }
}

TEST_CASE("OK, CONT and FAIL carry what the session needs", "[dovecot]") {
  const auto ok = parse_auth_server_line("OK\t42\tuser=alice@example.test\toriginal_user=x");
  REQUIRE(ok.line);
  CHECK(ok.line->kind == AuthServerLine::Kind::ok);
  CHECK(ok.line->id == 42);
  CHECK(ok.line->user == "alice@example.test");
  const auto cont = parse_auth_server_line("CONT\t7\tUGFzc3dvcmQ6");
  REQUIRE(cont.line);
  CHECK(cont.line->challenge == "UGFzc3dvcmQ6");
  CHECK(parse_auth_server_line("CONT\t7").line->challenge.empty());  // an empty challenge
  const auto fail = parse_auth_server_line("FAIL\t9\tuser=bob\treason=Try later\ttemp");
  REQUIRE(fail.line);
  CHECK(fail.line->temporary);
  CHECK(fail.line->user == "bob");
  CHECK(fail.line->reason == "Try later");
  CHECK_FALSE(parse_auth_server_line("FAIL\t9").line->temporary);
}

TEST_CASE("auth replies that must not be believed are errors", "[dovecot]") {
  for (const char* line :
       {"OK\t0\tuser=a", "OK\tx\tuser=a", "OK\t4294967296\tuser=a", "OK\t-1\tuser=a", "OK", "OK\t5",
        "OK\t5\tuser=", "OK\t5\tuser=two words", "OK\t5\tuser=a\001nb", "CONT\t5\tnot base64!",
        "CONT\t5\tabc", "CONT\t5\tab\001ncd=", "VERSION\t1", "VERSION\tx\t2", "MECH",
        "MECH\tPL AIN", "SPID"}) {
    INFO(line);
    const auto parsed = parse_auth_server_line(line);
    CHECK_FALSE(parsed.line);
    CHECK_FALSE(parsed.error.empty());
  }
}

TEST_CASE("userdb answers parse, with their fields", "[dovecot]") {
  const auto user = parse_userdb_line(
      "USER\t1\talice@example.test\tuid=65534\thome=/home/alice\tcoi_filter=active");
  REQUIRE(user.line);
  CHECK(user.line->kind == UserdbLine::Kind::user);
  CHECK(user.line->id == 1);
  CHECK(user.line->user == "alice@example.test");
  REQUIRE(user.line->fields.size() == 3);
  CHECK(user.line->fields[2] == std::pair<std::string, std::string>{"coi_filter", "active"});
  CHECK(parse_userdb_line("NOTFOUND\t2").line->kind == UserdbLine::Kind::notfound);
  const auto fail = parse_userdb_line("FAIL\t3\treason=LDAP down");
  REQUIRE(fail.line);
  CHECK(fail.line->reason == "LDAP down");
  CHECK(parse_userdb_line("VERSION\t1\t1").line->major_version == 1);
  for (const char* line : {"USER\t1", "USER\t1\t", "USER\tx\talice", "NOTFOUND", "FAIL\t0"}) {
    INFO(line);
    CHECK_FALSE(parse_userdb_line(line).line);
  }
}

TEST_CASE("auth socket settings: unix and inet", "[dovecot][config]") {
  std::string error;
  const auto unix_socket = parse_dovecot_endpoint("unix:/run/dovecot/auth-client", error);
  REQUIRE(unix_socket);
  CHECK(unix_socket->unix_path == "/run/dovecot/auth-client");
  CHECK(unix_socket->describe() == "unix:/run/dovecot/auth-client");
  const auto v4 = parse_dovecot_endpoint("inet:127.0.0.1:12345", error);
  REQUIRE(v4);
  CHECK(v4->host == "127.0.0.1");
  CHECK(v4->port == 12345);
  const auto v6 = parse_dovecot_endpoint("inet:[::1]:12345", error);
  REQUIRE(v6);
  CHECK(v6->host == "::1");
  CHECK(v6->describe() == "inet:[::1]:12345");
  for (const char* bad : {"", "unix:", "/run/dovecot/auth-client", "inet:localhost:1",
                          "inet:127.0.0.1", "inet:127.0.0.1:0", "inet:127.0.0.1:65536",
                          "inet:::1:5", "inet:[127.0.0.1]:5", "tcp:127.0.0.1:5"}) {
    INFO(bad);
    error.clear();
    CHECK_FALSE(parse_dovecot_endpoint(bad, error));
    CHECK_FALSE(error.empty());
  }
  CHECK_FALSE(parse_dovecot_endpoint("unix:/" + std::string(200, 'x'), error));
}
