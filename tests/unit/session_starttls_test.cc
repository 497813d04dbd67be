// Unit tests of STARTTLS in the session state machine (RFC 3207): what the
// client said in plaintext is forgotten after the handshake (§4.2), bytes it
// pipelined after STARTTLS are discarded, and EHLO is required again.
#include <catch2/catch.hpp>
#include <string>

#include "tests/support/session_harness.h"

using stokend::Role;
using stokend::TlsMode;
using stokend::testing::SessionHarness;

namespace {

bool lists(const std::string& ehlo_reply, const std::string& keyword) {
  return ehlo_reply.find("250-" + keyword + "\n") != std::string::npos ||
         ehlo_reply.find("250 " + keyword) != std::string::npos;
}

}  // namespace

TEST_CASE("STARTTLS: the session starts over after the handshake", "[session]") {
  SessionHarness session({Role::submission, TlsMode::starttls});
  session.start();

  const std::string before = session.command("EHLO client.example");
  CHECK(lists(before, "STARTTLS"));
  CHECK_FALSE(lists(before, "AUTH PLAIN LOGIN"));  // RFC 4954 §4: not in plaintext

  CHECK(session.command("STARTTLS") == "220 2.0.0 Ready to start TLS");
  session.handshake();

  // The EHLO before TLS counts for nothing: MAIL needs a new one.
  CHECK(session.command("MAIL FROM:<alice@example.test>") == "503 5.5.1 Send EHLO/HELO first");
  const std::string after = session.command("EHLO client.example");
  CHECK_FALSE(lists(after, "STARTTLS"));
  CHECK(lists(after, "AUTH PLAIN LOGIN"));
  CHECK(session.command("STARTTLS") == "503 5.5.1 TLS already active");
}

TEST_CASE("STARTTLS forgets the transaction begun in plaintext", "[session]") {
  SessionHarness session({Role::mx, TlsMode::starttls});
  session.users.add("bob@example.test");
  session.start();
  session.command("EHLO client.example");
  CHECK(session.command("MAIL FROM:<carol@remote.test>") == "250 2.1.0 Ok");
  CHECK(session.command("STARTTLS") == "220 2.0.0 Ready to start TLS");
  session.handshake();
  CHECK(session.command("RCPT TO:<bob@example.test>") == "503 5.5.1 Need MAIL before RCPT");
  session.command("EHLO client.example");
  CHECK(session.command("MAIL FROM:<carol@remote.test>") == "250 2.1.0 Ok");
}

TEST_CASE("Commands pipelined after STARTTLS are discarded, not run under TLS", "[session]") {
  // RFC 3207 §4.2 (CVE-2011-0411): bytes sent with STARTTLS arrived in
  // plaintext; taking them as if they came through TLS would let a man in
  // the middle inject commands.
  SessionHarness session({Role::mx, TlsMode::starttls});
  session.users.add("bob@example.test");
  session.start();
  session.command("EHLO client.example");
  session.send("STARTTLS\r\nMAIL FROM:<mallory@remote.test>\r\nRCPT TO:<bob@example.test>\r\n");
  CHECK(session.reply() == "220 2.0.0 Ready to start TLS");
  session.handshake();
  session.pump_for(std::chrono::milliseconds(30));
  CHECK(session.unread().empty());  // no reply to the injected commands

  // The injected MAIL left nothing behind.
  session.command("EHLO client.example");
  CHECK(session.command("RCPT TO:<bob@example.test>") == "503 5.5.1 Need MAIL before RCPT");
  CHECK(session.command("NOOP") == "250 2.0.0 Ok");
}

TEST_CASE("STARTTLS where it is not offered", "[session]") {
  SECTION("a listener without TLS") {
    SessionHarness session({Role::mx, TlsMode::none});
    session.start();
    const std::string ehlo = session.command("EHLO client.example");
    CHECK_FALSE(lists(ehlo, "STARTTLS"));
    CHECK(session.command("STARTTLS") == "502 5.5.1 STARTTLS not available");
  }
  SECTION("an implicit-TLS listener") {
    SessionHarness session({Role::submission, TlsMode::implicit});
    CHECK(session.start() == "220 mx.example.test ESMTP stokend");
    CHECK(session.command("STARTTLS") == "502 5.5.1 STARTTLS not available");
  }
  SECTION("with an argument") {
    SessionHarness session({Role::mx, TlsMode::starttls});
    session.start();
    CHECK(session.command("STARTTLS now") == "501 5.5.4 STARTTLS takes no argument");
  }
}
