// Unit tests of the session state machine (mta/server/session.h) on fakes:
// pipelined commands (RFC 2920) are answered in order, also across work the
// session waits for, and a message is answered 250 only once queued.
#include <catch2/catch.hpp>
#include <string>

#include "common/base64.h"
#include "mta/server/sasl.h"
#include "mta/users.h"
#include "tests/support/session_harness.h"

using stokend::Role;
using stokend::TlsMode;
using stokend::testing::SessionHarness;

namespace {

const std::string& alice_hash() {
  static const std::string hash = stokend::hash_password("alice's secret");
  return hash;
}

std::string plain_response(const std::string& login, const std::string& password) {
  return stokend::encode_base64(std::string("\0", 1) + login + std::string("\0", 1) + password);
}

}  // namespace

TEST_CASE("Pipelined commands are answered in order, the message after it is queued", "[session]") {
  SessionHarness session({Role::mx, TlsMode::none});
  session.users.add("bob@example.test");
  CHECK(session.start() == "220 mx.example.test ESMTP stokend");

  session.send(
      "EHLO client.example\r\nMAIL FROM:<carol@remote.test>\r\nRCPT TO:<bob@example.test>\r\n"
      "RCPT TO:<nobody@example.test>\r\nDATA\r\n");
  auto replies = session.replies(5);
  REQUIRE(replies.size() == 5);
  CHECK(replies[0].rfind("250-mx.example.test\n250-PIPELINING", 0) == 0);
  CHECK(replies[1] == "250 2.1.0 Ok");
  CHECK(replies[2] == "250 2.1.5 Ok");
  CHECK(replies[3] == "550 5.1.1 <nobody@example.test>: Recipient address rejected: user unknown");
  CHECK(replies[4] == "354 End data with <CR><LF>.<CR><LF>");

  session.send("Subject: hello\r\n\r\nHi Bob.\r\n.\r\nNOOP\r\nQUIT\r\n");
  replies = session.replies(3);
  REQUIRE(replies.size() == 3);
  CHECK(replies[0] == "250 2.0.0 Ok: queued as q1");
  CHECK(replies[1] == "250 2.0.0 Ok");
  CHECK(replies[2] == "221 2.0.0 Bye");
  CHECK(session.closed());

  REQUIRE(session.intake.messages.size() == 1);
  const auto& queued = session.intake.messages[0];
  CHECK(queued.envelope.sender == "carol@remote.test");
  CHECK(queued.envelope.recipients == std::vector<std::string>{"bob@example.test"});
  // Our Received field first, then the message as sent.
  CHECK(queued.data.rfind("Received: from client.example", 0) == 0);
  CHECK(queued.data.find("Subject: hello\r\n\r\nHi Bob.\r\n") != std::string::npos);
}

TEST_CASE("Commands pipelined after AUTH wait for the password check", "[session]") {
  SessionHarness session({Role::submission, TlsMode::implicit});
  session.users.add("alice@example.test", alice_hash());
  session.workers.run_at_once = false;
  CHECK(session.start() == "220 mx.example.test ESMTP stokend");

  session.send("EHLO client.example\r\nAUTH PLAIN " +
               plain_response("alice@example.test", "alice's secret") +
               "\r\nMAIL FROM:<alice@example.test>\r\nRCPT TO:<dave@remote.test>\r\nNOOP\r\n");
  CHECK(session.reply().rfind("250-mx.example.test", 0) == 0);
  // The password check waits on the work runner; nothing after AUTH is
  // answered meanwhile, and MAIL is not refused as if AUTH had not happened.
  session.pump_for(std::chrono::milliseconds(30));
  CHECK(session.unread().empty());
  REQUIRE(session.workers.pending() == 1);
  CHECK(session.workers.run_pending() == 1);

  auto replies = session.replies(4);
  REQUIRE(replies.size() == 4);
  CHECK(replies[0] == "235 2.7.0 Authentication successful");
  CHECK(replies[1] == "250 2.1.0 Ok");
  CHECK(replies[2] == "250 2.1.5 Ok");  // relaying: a logged-in user
  CHECK(replies[3] == "250 2.0.0 Ok");
}

TEST_CASE("The queue's failure is answered 4xx and the session goes on", "[session]") {
  SessionHarness session({Role::mx, TlsMode::none});
  session.users.add("bob@example.test");
  session.start();
  const std::string transaction =
      "EHLO client.example\r\nMAIL FROM:<carol@remote.test>\r\nRCPT TO:<bob@example.test>\r\n"
      "DATA\r\nSubject: x\r\n\r\nx\r\n.\r\nNOOP\r\n";

  SECTION("the spool's file system is full: 452 4.3.1") {
    session.intake.fail_with = std::make_error_code(std::errc::no_space_on_device);
    session.send(transaction);
    auto replies = session.replies(6);
    REQUIRE(replies.size() == 6);
    CHECK(replies[4] == "452 4.3.1 Insufficient system storage");
    CHECK(replies[5] == "250 2.0.0 Ok");
  }
  SECTION("any other failure: 451 4.3.0") {
    session.intake.fail_with = std::make_error_code(std::errc::io_error);
    session.send(transaction);
    auto replies = session.replies(6);
    REQUIRE(replies.size() == 6);
    CHECK(replies[4] == "451 4.3.0 Temporary local problem, try again later");
    CHECK(replies[5] == "250 2.0.0 Ok");
  }
  CHECK(session.intake.messages.empty());
}

TEST_CASE("BDAT chunks pipelined with their commands (RFC 3030)", "[session]") {
  SessionHarness session({Role::mx, TlsMode::none});
  session.users.add("bob@example.test");
  session.start();
  session.send(
      "EHLO client.example\r\nMAIL FROM:<carol@remote.test>\r\nRCPT TO:<bob@example.test>\r\n"
      "BDAT 9\r\nQUIT\r\nxyzBDAT 2 LAST\r\n\r\nQUIT\r\n");
  auto replies = session.replies(6);
  REQUIRE(replies.size() == 6);
  CHECK(replies[3] == "250 2.0.0 9 octets received");
  CHECK(replies[4] == "250 2.0.0 Ok: queued as q1");
  CHECK(replies[5] == "221 2.0.0 Bye");
  REQUIRE(session.intake.messages.size() == 1);
  // The chunk's bytes are data, even when they look like a command.
  const std::string& data = session.intake.messages[0].data;
  CHECK(data.substr(data.size() - 11) == "QUIT\r\nxyz\r\n");
}

TEST_CASE("RCPT past max_recipients: 452 4.5.3, the transaction goes on", "[session]") {
  SessionHarness session({Role::mx, TlsMode::none});
  session.config.limits.max_recipients = 2;
  session.users.add("bob@example.test");
  session.users.add("dan@example.test");
  session.start();
  session.send(
      "EHLO client.example\r\nMAIL FROM:<carol@remote.test>\r\nRCPT TO:<bob@example.test>\r\n"
      "RCPT TO:<bob@example.test>\r\nRCPT TO:<dan@example.test>\r\nDATA\r\n");
  auto replies = session.replies(6);
  REQUIRE(replies.size() == 6);
  CHECK(replies[3] == "250 2.1.5 Ok");  // a repeat counts too
  CHECK(replies[4] == "452 4.5.3 Too many recipients");
  CHECK(replies[5] == "354 End data with <CR><LF>.<CR><LF>");
}
