// Unit tests of the Token Server in the session state machine
// (mta/server/token_server.h): AUTH STOKEN, and what a token session may
// not do: relay, use GENSTOKEN, send as anyone but the token's remote
// address, or have its message queued.
#include <catch2/catch.hpp>
#include <string>

#include "common/base64.h"
#include "mta/routes.h"
#include "mta/server/sasl.h"
#include "mta/users.h"
#include "tests/support/fake_token_store.h"
#include "tests/support/session_harness.h"
#include "tests/support/temporary_directory.h"
#include "tokens/secret_rings.h"
#include "tokens/token_authority.h"

using stokend::encode_base64;
using stokend::Role;
using stokend::Route;
using stokend::RouteTable;
using stokend::TlsMode;
using stokend::testing::SessionHarness;
using stokend::testing::TemporaryDirectory;
namespace tokens = stokend::tokens;

namespace {

const std::int64_t now = 1'800'000'000;

// A submission session on an implicit-TLS port with the Token Server; alice
// is our user, bob at remote.test holds a token for writing to her.
struct TokenFixture {
  TemporaryDirectory directory;
  tokens::SecretRings rings =
      tokens::SecretRings::load_or_create((directory.path() / "secrets").string(), now);
  tokens::FakeTokenStore store;
  tokens::TokenAuthority authority{rings, store, tokens::TokenPolicy{}, [] { return now; }};
  RouteTable routes{{{"example.test", Route{Route::Transport::maildir, {}, {}}}}};
  SessionHarness session{{Role::submission, TlsMode::implicit}};
  std::string token = authority.mint_temporary("bob@remote.test", "alice@example.test");

  TokenFixture() {
    session.users.add("alice@example.test");
    session.tokens = &authority;
    session.routes = &routes;
    session.start();
  }

  std::string auth_stoken(const std::string& recipient, const std::string& with) {
    return session.command("AUTH STOKEN " + encode_base64(recipient + std::string(1, '\0') + with));
  }
};

}  // namespace

TEST_CASE("Token Server: LHLO and AUTH STOKEN", "[session]") {
  TokenFixture fixture;
  auto& session = fixture.session;

  const std::string lhlo = session.command("LHLO client.example");
  CHECK(lhlo.find("250-AUTH STOKEN\n") != std::string::npos);
  CHECK(lhlo.find("250 STOKEN") != std::string::npos);
  CHECK(session.command("AUTH PLAIN x") == "504 5.5.4 Only AUTH STOKEN is available after LHLO");
  CHECK(session.command("MAIL FROM:<bob@remote.test>") == "530 5.7.0 Authentication required");

  SECTION("a token that is not ours: 535 after the delay") {
    CHECK(fixture.auth_stoken("alice@example.test", "1-2:3-4:5-6:7-8:9-0") ==
          "535 5.7.8 Authentication credentials invalid");
  }
  SECTION("a good token, but for a recipient who is not a user") {
    CHECK(fixture.auth_stoken("nobody@example.test", fixture.token) ==
          "535 5.7.8 Authentication credentials invalid");
  }
  SECTION("a response that is not recipient NUL token") {
    CHECK(session.command("AUTH STOKEN " + encode_base64("no separator")) ==
          "501 5.5.2 Invalid STOKEN response");
  }
  SECTION("success, then a second AUTH is refused") {
    CHECK(fixture.auth_stoken("alice@example.test", fixture.token) ==
          "235 2.7.0 Authentication successful");
    CHECK(session.command("AUTH STOKEN x") == "503 5.5.1 Already authenticated");
    CHECK(session.command("LHLO client.example").find("AUTH STOKEN") == std::string::npos);
  }
}

TEST_CASE("A token session's restrictions", "[session]") {
  TokenFixture fixture;
  auto& session = fixture.session;
  session.command("LHLO client.example");
  REQUIRE(fixture.auth_stoken("alice@example.test", fixture.token) ==
          "235 2.7.0 Authentication successful");

  SECTION("no GENSTOKEN, no REVSTOKEN") {
    CHECK(session.command("GENSTOKEN TEMP carol@remote.test") ==
          "550 5.7.1 GENSTOKEN is not permitted in a token session");
    CHECK(session.command("REVSTOKEN carol@remote.test") ==
          "550 5.7.1 REVSTOKEN is not permitted in a token session");
  }
  SECTION("MAIL FROM only the token's remote address, never <>") {
    CHECK(session.command("MAIL FROM:<mallory@remote.test>") ==
          "553 5.7.1 Sender address mallory@remote.test is not the address the token was "
          "issued to");
    CHECK(session.command("MAIL FROM:<>") ==
          "553 5.7.1 A token session cannot use the null sender");
    CHECK(session.command("MAIL FROM:<bob@remote.test>") == "250 2.1.0 Ok");
  }
  SECTION("no relaying, STOKEN required") {
    REQUIRE(session.command("MAIL FROM:<bob@remote.test>") == "250 2.1.0 Ok");
    CHECK(session.command("RCPT TO:<carol@remote.test> STOKEN=" + fixture.token) ==
          "550 5.7.1 <carol@remote.test>: Relay access denied in a token session");
    CHECK(session.command("RCPT TO:<alice@example.test>") ==
          "550 5.7.1 <alice@example.test>: STOKEN required in a token session");
  }
  SECTION("after EHLO: only the SYNC variant, never a queued transaction") {
    session.command("EHLO client.example");
    CHECK(session.command("MAIL FROM:<bob@remote.test>") ==
          "503 5.5.1 A token session delivers synchronously: send LHLO, or MAIL with SYNC");
    CHECK(session.command("MAIL FROM:<bob@remote.test> SYNC") == "250 2.1.0 Ok");
  }
  SECTION("the message is delivered now, one reply per recipient, never queued") {
    REQUIRE(session.command("MAIL FROM:<bob@remote.test>") == "250 2.1.0 Ok");
    CHECK(session.command("RCPT TO:<alice@example.test> STOKEN=" + fixture.token) ==
          "250 2.1.5 Ok");
    CHECK(session.command("RCPT TO:<Alice@example.test> STOKEN=" + fixture.token) ==
          "503 5.5.1 <Alice@example.test>: Duplicate recipient");
    CHECK(session.command("DATA") == "354 End data with <CR><LF>.<CR><LF>");
    CHECK(session.command("Subject: hi\r\n\r\nHello.\r\n.") ==
          "250 2.1.12 <alice@example.test> d1 Delivered");
    CHECK(session.intake.messages.empty());
    REQUIRE(session.delivery.delivered.size() == 1);
    CHECK(session.delivery.delivered[0].envelope.sender == "bob@remote.test");
    // The Received field says LMTPSA (RFC 3848 §4), as the extension requires.
    CHECK(session.delivery.delivered[0].data->find("with LMTPSA") != std::string::npos);
  }
}

TEST_CASE("The EHLO + SYNC token transaction needs no AUTH STOKEN", "[session]") {
  TokenFixture fixture;
  auto& session = fixture.session;
  session.command("EHLO client.example");
  CHECK(session.command("MAIL FROM:<bob@remote.test> SYNC=yes") == "501 5.5.4 SYNC takes no value");
  CHECK(session.command("MAIL FROM:<bob@remote.test> SYNC") == "250 2.1.0 Ok");
  CHECK(session.command("AUTH PLAIN x") == "503 5.5.1 AUTH not allowed during a transaction");
  // The token is checked against the pair (sender, recipient) at RCPT.
  CHECK(session.command("RCPT TO:<alice@example.test> STOKEN=" + fixture.token) == "250 2.1.5 Ok");
}

TEST_CASE("Token Server with users that answer later (Dovecot's userdb)", "[session][dovecot]") {
  TokenFixture fixture;
  auto& session = fixture.session;
  session.users.asynchronous = true;
  session.command("LHLO client.example");
  const auto stoken = [&](const std::string& recipient) {
    return "AUTH STOKEN " + encode_base64(recipient + std::string(1, '\0') + fixture.token);
  };

  SECTION("AUTH STOKEN and RCPT wait for the answer, then go on") {
    session.send(stoken("alice@example.test") + "\r\nMAIL FROM:<bob@remote.test>\r\n");
    session.pump_for(std::chrono::milliseconds(20));
    CHECK(session.unread().empty());
    REQUIRE(session.users.answer_pending() == 1);
    CHECK(session.reply() == "235 2.7.0 Authentication successful");
    CHECK(session.reply() == "250 2.1.0 Ok");
    session.send("RCPT TO:<alice@example.test> STOKEN=" + fixture.token + "\r\nNOOP\r\n");
    session.pump_for(std::chrono::milliseconds(20));
    CHECK(session.unread().empty());
    REQUIRE(session.users.answer_pending() == 1);
    CHECK(session.reply() == "250 2.1.5 Ok");
    CHECK(session.reply() == "250 2.0.0 Ok");
  }
  SECTION("users unavailable: AUTH STOKEN 454 4.7.0") {
    session.users.unavailable = true;
    session.send(stoken("alice@example.test") + "\r\n");
    session.pump_for(std::chrono::milliseconds(20));
    REQUIRE(session.users.answer_pending() == 1);
    CHECK(session.reply() == "454 4.7.0 Temporary authentication failure");
  }
  SECTION("users unavailable at RCPT: 451 4.3.0") {
    session.send(stoken("alice@example.test") + "\r\n");
    session.pump_for(std::chrono::milliseconds(20));
    REQUIRE(session.users.answer_pending() == 1);
    REQUIRE(session.reply() == "235 2.7.0 Authentication successful");
    REQUIRE(session.command("MAIL FROM:<bob@remote.test>") == "250 2.1.0 Ok");
    session.users.unavailable = true;
    session.send("RCPT TO:<alice@example.test> STOKEN=" + fixture.token + "\r\n");
    session.pump_for(std::chrono::milliseconds(20));
    REQUIRE(session.users.answer_pending() == 1);
    CHECK(session.reply() ==
          "451 4.3.0 <alice@example.test>: Temporary failure in user lookup, try again later");
  }
}
