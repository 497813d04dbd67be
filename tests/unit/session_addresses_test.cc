// Unit tests of the session's address rewriting (mta/server/
// session_aliases.cc and the RCPT lookup in session_transaction.cc) on the
// fakes of tests/support/: an extended address is looked up as written and
// then as its user's, also when the directory answers later, and is queued
// with its extension; an alias queues its expansion (local and remote
// addresses, one RCPT counted) with the ORCPT of the address given; a
// catch-all applies only after the users said "unknown"; a loop is 451
// 4.3.0 and a fan-out over the limit 452 4.5.3, with nothing queued.
#include <catch2/catch.hpp>
#include <chrono>
#include <string>

#include "mta/addresses/alias_file.h"
#include "tests/support/files.h"
#include "tests/support/session_harness.h"
#include "tests/support/temporary_directory.h"

using stokend::Role;
using stokend::TlsMode;
using stokend::addresses::AliasFile;
using stokend::testing::SessionHarness;
using stokend::testing::TemporaryDirectory;
using stokend::testing::write_whole_file;
using namespace std::chrono_literals;

namespace {

const char* const message = "Subject: t\r\n\r\nbody\r\n.";  // command() ends the line

}  // namespace

TEST_CASE("an extended address is its user's, asked as written first", "[session][addresses]") {
  SessionHarness session({Role::mx, TlsMode::none});
  session.config.recipient_delimiter = "+";
  session.users.add("alice@example.test");
  session.users.add("bob+x@example.test");
  session.users.asynchronous = true;  // as Dovecot's userdb answers
  session.start();
  session.command("EHLO client.example");
  CHECK(session.command("MAIL FROM:<carol@remote.test>") == "250 2.1.0 Ok");
  session.send("RCPT TO:<Alice+News@example.test>\r\n");
  session.pump_for(10ms);
  CHECK(session.users.answer_pending() == 1);  // alice+news@: nobody
  session.pump_for(10ms);
  CHECK(session.unread().empty());
  CHECK(session.users.answer_pending() == 1);  // alice@: found
  CHECK(session.reply() == "250 2.1.5 Ok");
  // A user whose name holds the delimiter is found as written, once.
  session.send("RCPT TO:<bob+x@example.test>\r\n");
  session.pump_for(10ms);
  CHECK(session.users.answer_pending() == 1);
  CHECK(session.reply() == "250 2.1.5 Ok");
  session.send("RCPT TO:<nobody+x@example.test>\r\n");
  session.pump_for(10ms);
  CHECK(session.users.answer_pending() == 1);
  session.pump_for(10ms);
  CHECK(session.users.answer_pending() == 1);
  CHECK(session.reply() ==
        "550 5.1.1 <nobody+x@example.test>: Recipient address rejected: user unknown");
  CHECK(session.command("DATA").starts_with("354"));
  CHECK(session.command(message).starts_with("250 2.0.0"));
  REQUIRE(session.intake.messages.size() == 1);
  CHECK(session.intake.messages[0].envelope.recipients ==
        std::vector<std::string>{"alice+news@example.test", "bob+x@example.test"});
}

TEST_CASE("without a delimiter an extended address is nobody's", "[session][addresses]") {
  SessionHarness session({Role::mx, TlsMode::none});
  session.users.add("alice@example.test");
  session.start();
  session.command("EHLO client.example");
  session.command("MAIL FROM:<carol@remote.test>");
  CHECK(session.command("RCPT TO:<alice+news@example.test>") ==
        "550 5.1.1 <alice+news@example.test>: Recipient address rejected: user unknown");
}

TEST_CASE("aliases at RCPT: expansion, catch-all, loop and limit", "[session][addresses]") {
  TemporaryDirectory directory;
  const auto file = directory.path() / "aliases";
  std::string big = "big@example.test";
  for (int i = 0; i < 1001; ++i) big += " u" + std::to_string(i) + "@example.test";
  write_whole_file(file,
                   "team@example.test alice@example.test, far@elsewhere.test\n"
                   "loop@example.test loop2@example.test\n"
                   "loop2@example.test loop@example.test\n"
                   "@example.test alice@example.test\n" +
                       big + "\n");
  AliasFile aliases(file);
  REQUIRE(aliases.load("+").empty());
  SessionHarness session({Role::mx, TlsMode::none});
  session.config.recipient_delimiter = "+";
  session.config.limits.max_recipients = 2;
  session.aliases = &aliases;
  session.users.add("alice@example.test");
  session.users.add("bob@example.test");
  session.users.asynchronous = true;
  session.start();
  session.command("EHLO client.example");
  CHECK(session.command("MAIL FROM:<carol@remote.test>") == "250 2.1.0 Ok");
  // An alias needs no user lookup.
  CHECK(session.command("RCPT TO:<team+x@example.test>") == "250 2.1.5 Ok");
  CHECK(session.users.lookups == 0);
  CHECK(session.command("RCPT TO:<loop@example.test>") ==
        "451 4.3.0 <loop@example.test>: Temporary failure: alias loop, try again later");
  CHECK(session.command("RCPT TO:<big@example.test>") ==
        "452 4.5.3 <big@example.test>: Too many recipients: alias expands to more than 1000");
  // A user is a user even with a catch-all: asked first, found.
  session.send("RCPT TO:<bob@example.test>\r\n");
  session.pump_for(10ms);
  CHECK(session.users.answer_pending() == 1);
  CHECK(session.reply() == "250 2.1.5 Ok");
  CHECK(session.command("DATA").starts_with("354"));
  CHECK(session.command(message).starts_with("250 2.0.0"));
  REQUIRE(session.intake.messages.size() == 1);
  const auto& envelope = session.intake.messages[0].envelope;
  // Two RCPT commands accepted (max_recipients 2), three addresses queued.
  CHECK(envelope.recipients ==
        std::vector<std::string>{"alice@example.test", "far@elsewhere.test", "bob@example.test"});
  REQUIRE(envelope.recipient_dsn.size() == 3);
  CHECK(envelope.recipient_dsn[0].original_type == "rfc822");
  CHECK(envelope.recipient_dsn[0].original_address == "team+x@example.test");
  CHECK(envelope.recipient_dsn[1].original_address == "team+x@example.test");
  CHECK(envelope.recipient_dsn[2].original_address.empty());

  // The catch-all, once the users said "unknown".
  CHECK(session.command("MAIL FROM:<carol@remote.test>") == "250 2.1.0 Ok");
  session.send("RCPT TO:<nobody@example.test>\r\n");
  session.pump_for(10ms);
  CHECK(session.users.answer_pending() == 1);
  CHECK(session.reply() == "250 2.1.5 Ok");
  CHECK(session.command("DATA").starts_with("354"));
  CHECK(session.command(message).starts_with("250 2.0.0"));
  REQUIRE(session.intake.messages.size() == 2);
  CHECK(session.intake.messages[1].envelope.recipients ==
        std::vector<std::string>{"alice@example.test"});
}
