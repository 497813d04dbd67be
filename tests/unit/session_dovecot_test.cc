// Unit tests of the session (mta/server/) with users and logins that answer
// later, as Dovecot's userdb and auth service do (auth: backend dovecot),
// on the fakes of tests/support/: RCPT waits for its answer and pipelined
// commands stay in order; an unavailable directory is 451 4.3.0; AUTH
// relays the exchange, takes the service's login, and answers 454 4.7.0
// when the service cannot.
#include <catch2/catch.hpp>
#include <chrono>
#include <string>

#include "tests/support/session_harness.h"

using stokend::Role;
using stokend::TlsMode;
using stokend::auth::SaslStep;
using stokend::testing::FakeSaslAuthenticator;
using stokend::testing::SessionHarness;
using namespace std::chrono_literals;

TEST_CASE("RCPT waits for the directory; pipelined commands stay in order", "[session][dovecot]") {
  SessionHarness session({Role::mx, TlsMode::none});
  session.users.add("bob@example.test");
  session.users.asynchronous = true;
  CHECK(session.start() == "220 mx.example.test ESMTP stokend");
  session.send(
      "EHLO client.example\r\nMAIL FROM:<carol@remote.test>\r\nRCPT TO:<bob@example.test>\r\n"
      "RCPT TO:<nobody@example.test>\r\nNOOP\r\n");
  auto replies = session.replies(2);
  REQUIRE(replies.size() == 2);
  CHECK(replies[1] == "250 2.1.0 Ok");
  session.pump_for(30ms);
  CHECK(session.unread().empty());  // nothing after RCPT is answered meanwhile
  CHECK(session.users.answer_pending() == 1);
  CHECK(session.reply() == "250 2.1.5 Ok");
  session.pump_for(30ms);
  CHECK(session.unread().empty());
  CHECK(session.users.answer_pending() == 1);
  CHECK(session.reply() ==
        "550 5.1.1 <nobody@example.test>: Recipient address rejected: user unknown");
  CHECK(session.reply() == "250 2.0.0 Ok");
  CHECK(session.users.lookups == 2);
}

TEST_CASE("RCPT while the directory is unavailable: 451 4.3.0, then it works",
          "[session][dovecot]") {
  SessionHarness session({Role::mx, TlsMode::none});
  session.users.add("bob@example.test");
  session.users.asynchronous = true;
  session.users.unavailable = true;
  session.start();
  session.command("EHLO client.example");
  CHECK(session.command("MAIL FROM:<carol@remote.test>") == "250 2.1.0 Ok");
  session.send("RCPT TO:<bob@example.test>\r\n");
  session.pump_for(10ms);
  CHECK(session.users.answer_pending() == 1);
  CHECK(session.reply() ==
        "451 4.3.0 <bob@example.test>: Temporary failure in user lookup, try again later");
  session.users.unavailable = false;
  session.send("RCPT TO:<bob@example.test>\r\n");
  session.pump_for(10ms);
  CHECK(session.users.answer_pending() == 1);
  CHECK(session.reply() == "250 2.1.5 Ok");
  // Nothing accepted while unavailable: one recipient in the transaction.
  session.send("DATA\r\n");
  CHECK(session.reply() == "354 End data with <CR><LF>.<CR><LF>");
  session.send("Subject: x\r\n\r\nx\r\n.\r\n");
  CHECK(session.reply().rfind("250 2.0.0 Ok: queued as", 0) == 0);
  REQUIRE(session.intake.messages.size() == 1);
  CHECK(session.intake.messages[0].envelope.recipients ==
        std::vector<std::string>{"bob@example.test"});
}

TEST_CASE("AUTH through the SASL service: relayed, the service's login", "[session][dovecot]") {
  SessionHarness session({Role::submission, TlsMode::implicit});
  FakeSaslAuthenticator service;
  session.sasl = &service;
  session.start();
  const std::string ehlo = session.command("EHLO client.example");
  CHECK(ehlo.find("250-AUTH PLAIN LOGIN CRAM-MD5\n") != std::string::npos);
  CHECK(session.command("AUTH DIGEST-MD5") == "504 5.5.4 Unrecognized authentication mechanism");

  session.send("AUTH cram-md5\r\nMAIL FROM:<alice@example.test>\r\n");
  session.pump_for(20ms);
  CHECK(session.unread().empty());
  REQUIRE(service.started.size() == 1);
  CHECK(service.started[0].mechanism == "CRAM-MD5");
  CHECK_FALSE(service.started[0].initial);
  CHECK(service.started[0].secured);
  REQUIRE(service.step(SaslStep::Kind::challenge, "PDEyMzQ+"));
  CHECK(session.reply() == "334 PDEyMzQ+");
  // The pipelined MAIL is the client's response: relayed as it is.
  session.pump_for(20ms);
  REQUIRE(service.responses.size() == 1);
  CHECK(service.responses[0] == "MAIL FROM:<alice@example.test>");
  REQUIRE(service.step(SaslStep::Kind::ok, "Alice@Example.test"));
  CHECK(session.reply() == "235 2.7.0 Authentication successful");
  CHECK(session.command("MAIL FROM:<bob@example.test>").rfind("553 5.7.1", 0) == 0);
  CHECK(session.command("MAIL FROM:<alice@example.test>") == "250 2.1.0 Ok");
}

TEST_CASE("AUTH through the SASL service: failures", "[session][dovecot]") {
  SessionHarness session({Role::submission, TlsMode::implicit});
  FakeSaslAuthenticator service;
  session.sasl = &service;
  session.start();
  session.command("EHLO client.example");

  SECTION("the service cannot answer: 454 4.7.0, and AUTH may be tried again") {
    session.send("AUTH PLAIN AGFsaWNlAHNlY3JldA==\r\n");
    session.pump_for(10ms);
    REQUIRE(service.started.size() == 1);
    CHECK(service.started[0].initial == "AGFsaWNlAHNlY3JldA==");
    REQUIRE(service.step(SaslStep::Kind::temporary_failure));
    CHECK(session.reply() == "454 4.7.0 Temporary authentication failure");
    session.send("AUTH PLAIN AGFsaWNlAHNlY3JldA==\r\n");
    session.pump_for(10ms);
    REQUIRE(service.step(SaslStep::Kind::ok, "alice@example.test"));
    CHECK(session.reply() == "235 2.7.0 Authentication successful");
  }
  SECTION("refused: 535 5.7.8") {
    session.send("AUTH PLAIN AGFsaWNlAHdyb25n\r\n");
    session.pump_for(10ms);
    REQUIRE(service.step(SaslStep::Kind::failure, "alice@example.test"));
    CHECK(session.reply() == "535 5.7.8 Authentication credentials invalid");
    CHECK(session.command("MAIL FROM:<alice@example.test>") == "530 5.7.0 Authentication required");
  }
  SECTION("the client cancels after a challenge: the exchange is abandoned") {
    session.send("AUTH LOGIN\r\n");
    session.pump_for(10ms);
    REQUIRE(service.step(SaslStep::Kind::challenge, "VXNlcm5hbWU6"));
    CHECK(session.reply() == "334 VXNlcm5hbWU6");
    CHECK(session.command("*") == "501 5.0.0 Authentication cancelled");
    CHECK(service.abandoned == std::vector<std::uint32_t>{1});
    CHECK_FALSE(service.step(SaslStep::Kind::ok, "alice@example.test"));
  }
}
