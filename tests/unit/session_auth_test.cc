// Unit tests of AUTH in the session state machine (RFC 4954): where it is
// offered, PLAIN and LOGIN through the user lookup and the work runner,
// the continuation and its cancel, and what a logged-in session may do.
#include <catch2/catch.hpp>
#include <string>

#include "common/base64.h"
#include "mta/server/sasl.h"
#include "mta/users.h"
#include "tests/support/session_harness.h"

using stokend::encode_base64;
using stokend::Role;
using stokend::TlsMode;
using stokend::testing::SessionHarness;

namespace {

const std::string& alice_hash() {
  static const std::string hash = stokend::hash_password("alice's secret");
  return hash;
}

std::string plain(const std::string& login, const std::string& password) {
  return encode_base64(std::string("\0", 1) + login + std::string("\0", 1) + password);
}

// A submission session on an implicit-TLS port, alice a user.
struct LoggedOut {
  SessionHarness session{{Role::submission, TlsMode::implicit}};
  LoggedOut() {
    session.users.add("alice@example.test", alice_hash());
    session.start();
  }
};

}  // namespace

TEST_CASE("AUTH where it is not available", "[session]") {
  SECTION("the MX role") {
    SessionHarness session({Role::mx, TlsMode::none});
    session.start();
    session.command("EHLO client.example");
    CHECK(session.command("AUTH PLAIN " + plain("alice@example.test", "x")) ==
          "503 5.5.1 Authentication not available on this port");
  }
  SECTION("submission before TLS") {
    SessionHarness session({Role::submission, TlsMode::starttls});
    session.start();
    session.command("EHLO client.example");
    CHECK(session.command("AUTH PLAIN " + plain("alice@example.test", "x")) ==
          "538 5.7.11 Encryption required for requested authentication mechanism");
    CHECK(session.workers.submitted == 0);  // no password was checked
  }
}

TEST_CASE("AUTH PLAIN", "[session]") {
  LoggedOut fixture;
  auto& session = fixture.session;

  SECTION("before EHLO: answered as after it (nothing requires EHLO first)") {
    CHECK(session.command("AUTH PLAIN " + plain("alice@example.test", "alice's secret")) ==
          "235 2.7.0 Authentication successful");
  }
  SECTION("success; a second AUTH is refused; EHLO no longer offers AUTH") {
    session.command("EHLO client.example");
    CHECK(session.command("MAIL FROM:<alice@example.test>") == "530 5.7.0 Authentication required");
    CHECK(session.command("AUTH PLAIN " + plain("Alice@Example.test", "alice's secret")) ==
          "235 2.7.0 Authentication successful");
    CHECK(session.command("AUTH PLAIN " + plain("alice@example.test", "alice's secret")) ==
          "503 5.5.1 Already authenticated");
    const std::string ehlo = session.command("EHLO client.example");
    CHECK(ehlo.find("AUTH") == std::string::npos);
    // Only as herself (reject_sender_login_mismatch).
    CHECK(session.command("MAIL FROM:<bob@example.test>") ==
          "553 5.7.1 Sender address bob@example.test not owned by user alice@example.test");
    CHECK(session.command("MAIL FROM:<alice@example.test>") == "250 2.1.0 Ok");
    CHECK(session.command("AUTH PLAIN " + plain("alice@example.test", "alice's secret")) ==
          "503 5.5.1 Already authenticated");
  }
  SECTION("a wrong password, an unknown user: 535 after the delay, then 421") {
    session.config.limits.max_auth_failures = 2;
    session.command("EHLO client.example");
    CHECK(session.command("AUTH PLAIN " + plain("alice@example.test", "guess")) ==
          "535 5.7.8 Authentication credentials invalid");
    CHECK(session.command("MAIL FROM:<alice@example.test>") == "530 5.7.0 Authentication required");
    session.send("AUTH PLAIN " + plain("nobody@example.test", "guess") + "\r\n");
    auto replies = session.replies(2);
    REQUIRE(replies.size() == 2);
    CHECK(replies[0] == "535 5.7.8 Authentication credentials invalid");
    CHECK(replies[1] == "421 4.7.0 Too many authentication failures");
    CHECK(session.closed());
  }
  SECTION("acting as another user is refused") {
    const std::string nul(1, '\0');
    const std::string as_bob =
        encode_base64("bob@example.test" + nul + "alice@example.test" + nul + "alice's secret");
    CHECK(session.command("AUTH PLAIN " + as_bob) ==
          "535 5.7.8 Authentication credentials invalid");
  }
  SECTION("a response that is not base64 of PLAIN") {
    CHECK(session.command("AUTH PLAIN !!!") == "501 5.5.2 Invalid PLAIN response");
  }
  SECTION("with the response after a 334") {
    CHECK(session.command("AUTH PLAIN") == "334 ");
    CHECK(session.command(plain("alice@example.test", "alice's secret")) ==
          "235 2.7.0 Authentication successful");
  }
  SECTION("an unknown mechanism") {
    CHECK(session.command("AUTH CRAM-MD5") == "504 5.5.4 Unrecognized authentication mechanism");
  }
}

TEST_CASE("AUTH LOGIN: the continuation and its cancel", "[session]") {
  LoggedOut fixture;
  auto& session = fixture.session;
  session.command("EHLO client.example");

  SECTION("user name, then password") {
    CHECK(session.command("AUTH LOGIN") == "334 " + encode_base64("Username:"));
    CHECK(session.command(encode_base64("alice@example.test")) ==
          "334 " + encode_base64("Password:"));
    CHECK(session.command(encode_base64("alice's secret")) ==
          "235 2.7.0 Authentication successful");
  }
  SECTION("the user name with the command") {
    CHECK(session.command("AUTH LOGIN " + encode_base64("alice@example.test")) ==
          "334 " + encode_base64("Password:"));
    CHECK(session.command(encode_base64("wrong")) ==
          "535 5.7.8 Authentication credentials invalid");
  }
  SECTION("* cancels (RFC 4954 §4); the next line is a command again") {
    CHECK(session.command("AUTH LOGIN") == "334 " + encode_base64("Username:"));
    CHECK(session.command("*") == "501 5.0.0 Authentication cancelled");
    CHECK(session.command("NOOP") == "250 2.0.0 Ok");
    CHECK(session.workers.submitted == 0);
    // And a new exchange starts from the beginning.
    CHECK(session.command("AUTH LOGIN") == "334 " + encode_base64("Username:"));
  }
  SECTION("a response that is not base64") {
    CHECK(session.command("AUTH LOGIN") == "334 " + encode_base64("Username:"));
    CHECK(session.command("not base64!") == "501 5.5.2 Invalid LOGIN response");
    CHECK(session.command("NOOP") == "250 2.0.0 Ok");
  }
}
