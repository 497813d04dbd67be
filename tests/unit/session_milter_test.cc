// Unit tests of the session's milter step (mta/server/session_filter.cc):
// what the milters are asked, and how each verdict reaches the client and
// the queue, on a fake MessageFilter (tests/support/fake_message_filter.h).
#include <catch2/catch.hpp>
#include <string>

#include "tests/support/fake_message_filter.h"
#include "tests/support/session_harness.h"

using stokend::FilterVerdict;
using stokend::MilterConfig;
using stokend::Role;
using stokend::TlsMode;
using stokend::testing::FakeMessageFilter;
using stokend::testing::SessionHarness;

namespace {

MilterConfig milter(bool mx, bool submission) {
  MilterConfig config;
  config.name = "scanner";
  config.address = "inet:127.0.0.1:11332";
  config.host = "127.0.0.1";
  config.port = 11332;
  config.mx = mx;
  config.submission = submission;
  return config;
}

// An MX session with one milter for mx, bob a user; returns the reply to
// the end of the data.
struct MxWithMilter {
  SessionHarness session{{Role::mx, TlsMode::none}};
  FakeMessageFilter filter{session.base.get()};
  explicit MxWithMilter(bool for_mx = true) {
    session.users.add("bob@example.test");
    session.users.add("carol@example.test");
    session.config.milters = {milter(for_mx, true)};
    session.filter = &filter;
    session.start();
    session.command("EHLO client.example");
  }
  std::string send() {
    REQUIRE(session.command("MAIL FROM:<dave@remote.test>") == "250 2.1.0 Ok");
    REQUIRE(session.command("RCPT TO:<bob@example.test> NOTIFY=NEVER") == "250 2.1.5 Ok");
    REQUIRE(session.command("DATA").starts_with("354"));
    return session.command("Subject: hi\r\n\r\nHello.\r\n.");
  }
};

}  // namespace

TEST_CASE("milter: the request tells the transaction; accept queues it unchanged",
          "[session][milter]") {
  MxWithMilter fixture;
  CHECK(fixture.send() == "250 2.0.0 Ok: queued as q1");
  REQUIRE(fixture.filter.requests.size() == 1);
  const auto& request = fixture.filter.requests[0];
  REQUIRE(request.milters.size() == 1);
  CHECK(request.milters[0].name == "scanner");
  CHECK(request.hostname == "mx.example.test");
  CHECK(request.daemon_name == "stokend-mx");
  CHECK_FALSE(request.queue_id.empty());
  CHECK(request.client.address == "192.0.2.7");
  CHECK(request.client.helo == "client.example");
  CHECK(request.sender == "dave@remote.test");
  CHECK(request.recipients == std::vector<std::string>{"bob@example.test"});
  CHECK(request.message.starts_with("Received: "));
  CHECK(request.message.ends_with("Subject: hi\r\n\r\nHello.\r\n"));
  REQUIRE(fixture.session.intake.messages.size() == 1);
  CHECK(fixture.session.intake.messages[0].data == request.message);
  CHECK_FALSE(fixture.session.intake.messages[0].envelope.hold);
}

TEST_CASE("milter: a milter of another role is not asked", "[session][milter]") {
  MxWithMilter fixture(false);
  CHECK(fixture.send() == "250 2.0.0 Ok: queued as q1");
  CHECK(fixture.filter.requests.empty());
}

TEST_CASE("milter: reject and tempfail reach the client, nothing is queued", "[session][milter]") {
  MxWithMilter fixture;
  fixture.filter.decide = [](FilterVerdict& verdict) {
    verdict.action = FilterVerdict::Action::reject;
    verdict.code = 554;
    verdict.text = {"5.7.1 Spam", "5.7.1 see the log"};
  };
  CHECK(fixture.send() == "554-5.7.1 Spam\n554 5.7.1 see the log");
  fixture.filter.decide = [](FilterVerdict& verdict) {
    verdict.action = FilterVerdict::Action::tempfail;
    verdict.code = 451;
    verdict.text = {"4.7.1 Service unavailable - try again later"};
  };
  CHECK(fixture.send() == "451 4.7.1 Service unavailable - try again later");
  CHECK(fixture.session.intake.messages.empty());
  // The session goes on: the next transaction is accepted.
  fixture.filter.decide = nullptr;
  CHECK(fixture.send() == "250 2.0.0 Ok: queued as q1");
}

TEST_CASE("milter: discard answers 250 and keeps nothing", "[session][milter]") {
  MxWithMilter fixture;
  fixture.filter.decide = [](FilterVerdict& verdict) {
    verdict.action = FilterVerdict::Action::discard;
    verdict.reason = "milter scanner";
  };
  CHECK(fixture.send() == "250 2.0.0 Ok: discarded");
  CHECK(fixture.session.intake.messages.empty());
}

TEST_CASE("milter: the changed message, sender and recipients are queued; quarantine holds it",
          "[session][milter]") {
  MxWithMilter fixture;
  fixture.filter.decide = [](FilterVerdict& verdict) {
    verdict.action = FilterVerdict::Action::quarantine;
    verdict.sender = "";
    verdict.recipients = {"BOB@example.test", "Carol@Example.TEST", "erin@remote.test"};
    verdict.message = "X-Scanned: yes\r\n" + verdict.message;
  };
  CHECK(fixture.send() == "250 2.0.0 Ok: queued as q1");
  REQUIRE(fixture.session.intake.messages.size() == 1);
  const auto& queued = fixture.session.intake.messages[0];
  CHECK(queued.envelope.hold);
  CHECK(queued.envelope.sender.empty());
  // bob keeps his DSN request; carol is found among the users, erin relayed.
  CHECK(queued.envelope.recipients ==
        std::vector<std::string>{"bob@example.test", "carol@example.test", "erin@remote.test"});
  REQUIRE(queued.envelope.recipient_dsn.size() == 3);
  CHECK(queued.envelope.recipient_dsn[0].notify == stokend::queue::notify::never);
  CHECK(queued.envelope.recipient_dsn[1].notify == 0);
  CHECK(queued.data.starts_with("X-Scanned: yes\r\nReceived: "));
}
