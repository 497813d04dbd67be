// The queue's decisions about DSN requests (RFC 3461): who gets which
// notification, with what in it, across a restart (queue/queue_manager.h).
#include <catch2/catch.hpp>
#include <string>
#include <vector>

#include "tests/support/queue_fixture.h"

using namespace stokend;
using namespace stokend::testing::queue_fixture;

namespace {

RecipientDsn wants(std::uint8_t bits, std::string original = {}) {
  RecipientDsn request;
  request.notify = bits;
  if (!original.empty()) {
    request.original_type = "rfc822";
    request.original_address = std::move(original);
  }
  return request;
}

RecipientResult delivered_to(Handoff handoff) {
  RecipientResult result = delivered();
  result.handoff = handoff;
  return result;
}

std::vector<std::string> notifications(const FakeAgent& agent) {
  std::vector<std::string> found;
  for (const auto& call : agent.calls) {
    if (call.message.bounce) found.push_back(*call.message.data);
  }
  return found;
}

// Every notification is delivered at once; the original gets `results`.
void answer_originals_with(QueueFixture& queue, std::vector<RecipientResult> results) {
  queue.agent.respond = [results](const FakeAgent::Call& call) -> std::vector<RecipientResult> {
    if (call.message.bounce) return {delivered()};
    return results;
  };
}

}  // namespace

TEST_CASE("queue: NOTIFY=NEVER and NOTIFY without FAILURE get no bounce", "[queue][dsn]") {
  QueueFixture queue;
  queue.start();
  answer_originals_with(queue, {rejected(), rejected(), rejected()});
  Envelope message = envelope({"bob@example.net", "carol@example.net", "dave@example.net"});
  message.recipient_dsn = {wants(notify::never), wants(notify::success | notify::delay),
                           wants(notify::failure, "Dave@example.net")};
  queue.enqueue(message, ordinary_mail());
  const auto sent = notifications(queue.agent);
  REQUIRE(sent.size() == 1);  // for dave only
  INFO(sent[0]);
  CHECK(sent[0].find("Original-Recipient: rfc822; Dave@example.net\r\n"
                     "Final-Recipient: rfc822; dave@example.net\r\nAction: failed\r\n") !=
        std::string::npos);
  CHECK(sent[0].find("bob@example.net") == std::string::npos);
  CHECK(sent[0].find("carol@example.net") == std::string::npos);
  CHECK(queue.manager->list().empty());  // all final and settled: gone
}

TEST_CASE("queue: NOTIFY=SUCCESS gets a report that depends on where it went", "[queue][dsn]") {
  QueueFixture queue;
  queue.start();
  answer_originals_with(queue, {delivered_to(Handoff::mailstore), delivered_to(Handoff::relayed),
                                delivered_to(Handoff::relayed_with_dsn), delivered()});
  Envelope message =
      envelope({"bob@example.org", "carol@example.net", "dave@example.com", "erin@example.com"});
  message.recipient_dsn = {wants(notify::success), wants(notify::success | notify::failure),
                           wants(notify::success), wants(0)};
  message.envelope_id = "trip-7";
  queue.enqueue(message, ordinary_mail());
  const auto sent = notifications(queue.agent);
  REQUIRE(sent.size() == 1);
  INFO(sent[0]);
  CHECK(sent[0].find("Subject: Successful Mail Delivery Report") != std::string::npos);
  CHECK(sent[0].find("Original-Envelope-Id: trip-7\r\n") != std::string::npos);
  CHECK(sent[0].find("Final-Recipient: rfc822; bob@example.org\r\nAction: delivered\r\n") !=
        std::string::npos);
  CHECK(sent[0].find("Final-Recipient: rfc822; carol@example.net\r\nAction: relayed\r\n") !=
        std::string::npos);
  // The next hop took the DSN request over (RFC 3461 section 5.2.3), and
  // erin asked for nothing.
  CHECK(sent[0].find("dave@example.com") == std::string::npos);
  CHECK(sent[0].find("erin@example.com") == std::string::npos);
  CHECK(queue.manager->list().empty());
}

TEST_CASE("queue: a success report sent is durable across a restart", "[queue][dsn]") {
  QueueFixture queue;
  queue.start();
  // One recipient is delivered and reported while another is pending, so
  // the message stays: after a restart the report is not sent again.
  Envelope message = envelope({"bob@example.org", "carol@example.org"});
  message.recipient_dsn = {wants(notify::success, "Bob@example.org"), wants(notify::never)};
  const EnqueueResult stored = queue.enqueue(message, ordinary_mail());
  REQUIRE(queue.agent.calls.size() == 1);
  queue.agent.answer(0, {delivered_to(Handoff::mailstore), deferred()});
  queue.settle();
  REQUIRE(notifications(queue.agent).size() == 1);
  REQUIRE(queue.agent.calls.size() == 2);
  queue.agent.answer(1, {delivered()});  // the report itself is delivered and gone
  queue.settle();
  auto details = queue.manager->show(stored.id);
  REQUIRE(details);
  CHECK(details->state.recipients[0].success_reported);
  CHECK(details->state.recipients[0].handoff == Handoff::mailstore);

  queue.restart();
  details = queue.manager->show(stored.id);
  REQUIRE(details);
  CHECK(details->state.recipients[0].success_reported);  // durable: not sent again
  CHECK(details->state.recipients[0].handoff == Handoff::mailstore);
  REQUIRE(details->recipients.size() == 2);
  CHECK(queue.manager->list().size() == 1);
  CHECK(notifications(queue.agent).empty());
}

TEST_CASE("queue: the delay warning goes to those who asked for it", "[queue][dsn]") {
  QueueFixture queue;
  queue.settings.retry.delay_warning_after = 30min;
  queue.start();
  answer_originals_with(
      queue, {deferred("421 4.3.2 busy"), deferred("421 4.3.2 busy"), deferred("421 4.3.2 busy")});
  Envelope message = envelope({"bob@example.net", "carol@example.net", "dave@example.net"});
  message.recipient_dsn = {wants(notify::failure), wants(0), wants(notify::delay)};
  queue.enqueue(message, ordinary_mail());
  queue.advance(2h);
  const auto sent = notifications(queue.agent);
  REQUIRE(sent.size() == 1);
  INFO(sent[0]);
  CHECK(sent[0].find("Action: delayed") != std::string::npos);
  CHECK(sent[0].find("bob@example.net") == std::string::npos);  // FAILURE only
  CHECK(sent[0].find("Final-Recipient: rfc822; carol@example.net") != std::string::npos);
  CHECK(sent[0].find("Final-Recipient: rfc822; dave@example.net") != std::string::npos);
}

TEST_CASE("queue: no delay warning when nobody asked for one", "[queue][dsn]") {
  QueueFixture queue;
  queue.settings.retry.delay_warning_after = 30min;
  queue.start();
  answer_originals_with(queue, {deferred("421 4.3.2 busy")});
  Envelope message = envelope({"bob@example.net"});
  message.recipient_dsn = {wants(notify::failure | notify::success)};
  queue.enqueue(message, ordinary_mail());
  queue.advance(2h);
  CHECK(notifications(queue.agent).empty());
  CHECK(queue.manager->list().size() == 1);
}

TEST_CASE("queue: RET decides whether a bounce carries the body", "[queue][dsn]") {
  const std::string body_line = "The whole body, line one.";
  const std::string mail = "From: alice@example.org\r\nSubject: Full\r\n\r\n" + body_line + "\r\n";
  for (const DsnReturn ret : {DsnReturn::full, DsnReturn::headers, DsnReturn::unspecified}) {
    INFO("RET " << static_cast<int>(ret));
    QueueFixture queue;
    queue.start();
    answer_originals_with(queue, {rejected()});
    Envelope message = envelope({"bob@example.net"});
    message.dsn_return = ret;
    queue.enqueue(message, mail);
    const auto sent = notifications(queue.agent);
    REQUIRE(sent.size() == 1);
    CHECK(sent[0].find("Subject: Full\r\n") != std::string::npos);
    CHECK((sent[0].find(body_line) != std::string::npos) == (ret == DsnReturn::full));
  }
  // Over the limit, RET=FULL returns the headers.
  QueueFixture queue;
  queue.settings.returned_message_limit = 10;
  queue.start();
  answer_originals_with(queue, {rejected()});
  Envelope message = envelope({"bob@example.net"});
  message.dsn_return = DsnReturn::full;
  queue.enqueue(message, mail);
  const auto sent = notifications(queue.agent);
  REQUIRE(sent.size() == 1);
  CHECK(sent[0].find(body_line) == std::string::npos);
  CHECK(sent[0].find("text/rfc822-headers") != std::string::npos);
}
