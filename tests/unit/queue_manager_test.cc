// End-to-end tests of the queue (queue/queue_manager.h) with a fake
// delivery agent, a real spool in a temporary folder, and a hand-driven
// loop and clock (tests/support/queue_fixture.h). DSN requests:
// queue_manager_dsn_test.cc.
#include "queue/queue_manager.h"

#include <unistd.h>

#include <atomic>
#include <catch2/catch.hpp>
#include <chrono>
#include <condition_variable>
#include <filesystem>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "tests/support/queue_fixture.h"

using namespace stokend;
using namespace stokend::testing::queue_fixture;
namespace fs = std::filesystem;

TEST_CASE("queue reports stored before delivering, and forgets delivered mail", "[queue]") {
  QueueFixture queue;
  queue.start();
  std::vector<std::string> events;
  queue.agent.respond = [&](const FakeAgent::Call&) -> std::vector<RecipientResult> {
    events.push_back("deliver");
    return {delivered()};
  };
  std::optional<EnqueueResult> result;
  queue.manager->enqueue(envelope({"bob@example.net"}), ordinary_mail(), [&](EnqueueResult r) {
    events.push_back("stored");
    result = r;
  });
  CHECK(events.empty());  // durable first: nothing happens inside the call
  REQUIRE(queue.loop.run_until([&] { return result.has_value(); }));
  queue.settle();
  REQUIRE(*result);
  CHECK(events == std::vector<std::string>{"stored", "deliver"});
  REQUIRE(queue.agent.calls.size() == 1);
  CHECK(queue.agent.calls[0].recipients == std::vector<std::string>{"bob@example.net"});
  CHECK(*queue.agent.calls[0].message.data == ordinary_mail());
  CHECK(queue.manager->list().empty());
  CHECK_FALSE(queue.spool->contains(result->id));
}

TEST_CASE("queue retries a temporary failure on schedule until it succeeds", "[queue]") {
  QueueFixture queue;
  queue.start();
  const EnqueueResult stored = queue.enqueue(envelope({"bob@example.net"}), ordinary_mail());
  REQUIRE(queue.agent.calls.size() == 1);
  const TimePoint first_attempt = queue.loop.now();
  queue.agent.answer(0, {deferred()});
  queue.settle();

  const MessageSummary* summary = queue.find(stored.id);
  REQUIRE(summary);
  CHECK(summary->pending == 1);
  CHECK(summary->next_attempt == first_attempt + 5min);
  auto details = queue.manager->show(stored.id);
  REQUIRE(details);
  CHECK(details->state.recipients[0].attempts == 1);
  CHECK(details->state.recipients[0].last_reply == "451 4.7.1 Try again later");
  CHECK(details->headers.find("Subject: Hello\r\n") != std::string::npos);

  queue.advance(4min);
  CHECK(queue.agent.calls.size() == 1);
  queue.advance(1min);
  REQUIRE(queue.agent.calls.size() == 2);
  // Reloaded from the spool for the retry.
  CHECK(*queue.agent.calls[1].message.data == ordinary_mail());
  queue.agent.answer(1, {deferred()});
  queue.settle();
  CHECK(queue.find(stored.id)->next_attempt == queue.loop.now() + 10min);
  queue.advance(10min);
  REQUIRE(queue.agent.calls.size() == 3);
  queue.agent.answer(2, {delivered()});
  queue.settle();
  CHECK(queue.manager->list().empty());
  CHECK_FALSE(queue.spool->contains(stored.id));
}

TEST_CASE("queue keeps per-recipient results and bounces only the failed one", "[queue]") {
  QueueFixture queue;
  queue.start();
  const EnqueueResult stored = queue.enqueue(
      envelope({"bob@example.net", "carol@example.net", "dave@example.net"}), ordinary_mail());
  REQUIRE(queue.agent.calls.size() == 1);
  queue.agent.answer(
      0, {delivered(), deferred(), rejected("550 5.1.1 <dave@example.net>: no such user")});
  queue.settle();

  // The bounce went out like any message: null sender, to the sender.
  REQUIRE(queue.agent.calls.size() == 2);
  const FakeAgent::Call& bounce = queue.agent.calls[1];
  CHECK(bounce.message.bounce);
  CHECK(bounce.message.envelope.sender.empty());
  CHECK(bounce.recipients == std::vector<std::string>{"alice@example.org"});
  const std::string& dsn = *bounce.message.data;
  INFO(dsn);
  CHECK(dsn.find("From: Mail Delivery System <MAILER-DAEMON@mx.example.org>") == 0);
  CHECK(dsn.find("report-type=delivery-status") != std::string::npos);
  CHECK(dsn.find("Reporting-MTA: dns; mx.example.org\r\n") != std::string::npos);
  CHECK(dsn.find("Final-Recipient: rfc822; dave@example.net\r\nAction: failed\r\nStatus: "
                 "5.1.1\r\nDiagnostic-Code: smtp; 550 5.1.1 <dave@example.net>: no such "
                 "user\r\n") != std::string::npos);
  CHECK(dsn.find("bob@example.net") == std::string::npos);
  CHECK(dsn.find("carol@example.net") == std::string::npos);
  CHECK(dsn.find("Subject: Hello\r\n") != std::string::npos);
  queue.agent.answer(1, {delivered()});
  queue.settle();

  const MessageSummary* summary = queue.find(stored.id);
  REQUIRE(summary);
  CHECK(summary->pending == 1);
  auto details = queue.manager->show(stored.id);
  CHECK(details->state.recipients[0].status == RecipientStatus::delivered);
  CHECK(details->state.recipients[1].status == RecipientStatus::pending);
  CHECK(details->state.recipients[2].status == RecipientStatus::failed);
  CHECK(details->state.recipients[2].failure_reported);

  queue.advance(5min);
  REQUIRE(queue.agent.calls.size() == 3);
  CHECK(queue.agent.calls[2].recipients == std::vector<std::string>{"carol@example.net"});
  queue.agent.answer(2, {delivered()});
  queue.settle();
  CHECK(queue.manager->list().empty());
  CHECK(queue.agent.calls.size() == 3);  // no second bounce
}

TEST_CASE("queue bounces a message whose lifetime ran out", "[queue]") {
  QueueFixture queue;
  queue.settings.retry.lifetime = 1h;
  queue.settings.retry.delay_warning_after = 0s;
  queue.start();
  std::vector<TimePoint> attempts;
  queue.agent.respond = [&](const FakeAgent::Call& call) -> std::vector<RecipientResult> {
    if (call.message.bounce) return {delivered()};
    attempts.push_back(queue.loop.now());
    return {deferred("451 4.4.1 mx.example.net: connection timed out")};
  };
  const TimePoint arrival = queue.loop.now();
  const EnqueueResult stored = queue.enqueue(envelope({"bob@example.net"}), ordinary_mail());
  queue.advance(2h);

  // 0, 5, 15, 35 minutes, then the last attempt at the end of the hour.
  CHECK(attempts == std::vector<TimePoint>{arrival, arrival + 5min, arrival + 15min,
                                           arrival + 35min, arrival + 60min});
  REQUIRE(queue.agent.calls.size() == 6);
  const FakeAgent::Call& bounce = queue.agent.calls.back();
  CHECK(bounce.message.bounce);
  const std::string& dsn = *bounce.message.data;
  INFO(dsn);
  CHECK(dsn.find("Final-Recipient: rfc822; bob@example.net\r\nAction: failed\r\nStatus: "
                 "4.4.1\r\n") != std::string::npos);
  CHECK(dsn.find("Diagnostic-Code: smtp; 451 4.4.1 mx.example.net: connection timed out") !=
        std::string::npos);
  CHECK(queue.manager->list().empty());
  CHECK_FALSE(queue.spool->contains(stored.id));
}

TEST_CASE("queue sends one delay warning while it keeps trying", "[queue]") {
  QueueFixture queue;
  queue.settings.retry.delay_warning_after = 30min;
  queue.start();
  queue.agent.respond = [&](const FakeAgent::Call& call) -> std::vector<RecipientResult> {
    if (call.message.bounce) return {delivered()};
    return {deferred("421 4.3.2 busy")};
  };
  queue.enqueue(envelope({"bob@example.net"}), ordinary_mail());
  queue.advance(4h);
  std::vector<std::string> notifications;
  for (const auto& call : queue.agent.calls) {
    if (call.message.bounce) notifications.push_back(*call.message.data);
  }
  REQUIRE(notifications.size() == 1);
  CHECK(notifications[0].find("Subject: Delayed Mail (still being retried)") != std::string::npos);
  CHECK(notifications[0].find("Action: delayed\r\nStatus: 4.3.2\r\n") != std::string::npos);
  CHECK(notifications[0].find("Will-Retry-Until: ") != std::string::npos);
  REQUIRE(queue.manager->list().size() == 1);  // still trying
}

TEST_CASE("queue never bounces to a null sender, nor bounces a bounce", "[queue]") {
  QueueFixture queue;
  queue.start();
  SECTION("null sender") {
    queue.agent.respond = [](const FakeAgent::Call&) -> std::vector<RecipientResult> {
      return {rejected()};
    };
    queue.enqueue(envelope({"bob@example.net"}, ""), ordinary_mail());
    CHECK(queue.agent.calls.size() == 1);
    CHECK(queue.manager->list().empty());
  }
  SECTION("a bounce that fails") {
    // Every delivery fails permanently, the bounce as well.
    queue.agent.respond = [](const FakeAgent::Call&) -> std::vector<RecipientResult> {
      return {rejected()};
    };
    queue.enqueue(envelope({"bob@example.net"}), ordinary_mail());
    REQUIRE(queue.agent.calls.size() == 2);
    CHECK(queue.agent.calls[1].message.bounce);
    queue.advance(1h);
    CHECK(queue.agent.calls.size() == 2);
    CHECK(queue.manager->list().empty());
  }
}

TEST_CASE("queue delivers due chat mail before ordinary mail", "[queue]") {
  QueueFixture queue;
  queue.settings.max_concurrent_deliveries = 1;
  queue.start();
  queue.enqueue(envelope({"first@example.net"}), ordinary_mail("first"));
  REQUIRE(queue.agent.calls.size() == 1);  // occupies the only slot
  const EnqueueResult ordinary = queue.enqueue(envelope({"o@example.net"}), ordinary_mail());
  const EnqueueResult chat = queue.enqueue(envelope({"c@example.net"}), chat_mail());
  CHECK(queue.agent.calls.size() == 1);
  queue.agent.answer(0, {delivered()});
  queue.settle();
  REQUIRE(queue.agent.calls.size() == 2);
  CHECK(queue.agent.calls[1].message.id == chat.id);
  CHECK(queue.agent.calls[1].message.chat);
  queue.agent.answer(1, {delivered()});
  queue.settle();
  REQUIRE(queue.agent.calls.size() == 3);
  CHECK(queue.agent.calls[2].message.id == ordinary.id);
}

TEST_CASE("waiting messages keep their data within the budget", "[queue]") {
  QueueFixture queue;
  queue.settings.max_concurrent_deliveries = 1;
  const std::string first = ordinary_mail("first");
  const std::string second = ordinary_mail("second");
  const std::string third = ordinary_mail("third");
  // Room for the one in flight and one waiting message, not two.
  queue.settings.waiting_data_budget = first.size() + second.size();
  queue.start();
  queue.enqueue(envelope({"a@example.net"}), first);
  REQUIRE(queue.agent.calls.size() == 1);  // occupies the only slot
  queue.enqueue(envelope({"b@example.net"}), second);
  CHECK(queue.manager->statistics().resident_data_bytes == first.size() + second.size());
  queue.enqueue(envelope({"c@example.net"}), third);  // over the budget: read back later
  CHECK(queue.manager->statistics().resident_data_bytes == first.size() + second.size());
  for (std::size_t call = 0; call < 3; ++call) {
    queue.agent.answer(call, {delivered()});
    queue.settle();
  }
  REQUIRE(queue.agent.calls.size() == 3);
  CHECK(*queue.agent.calls[2].message.data == third);  // read back from the spool
  CHECK(queue.manager->statistics().resident_data_bytes == 0);
}

TEST_CASE("a delivery keeps its slot until its outcome is durable", "[queue]") {
  // The spool's syncs wait for the test's word once it closes the gate.
  struct Gate {
    std::mutex mutex;
    std::condition_variable changed;
    bool closed = false;
    std::atomic<int> waiting{0};
    void set_closed(bool value) {
      {
        std::lock_guard lock(mutex);
        closed = value;
      }
      changed.notify_all();
    }
    void pass() {
      std::unique_lock lock(mutex);
      ++waiting;
      changed.wait(lock, [this] { return !closed; });
      --waiting;
    }
  };
  Gate gate;
  QueueFixture queue;
  // Destroyed before the queue: a failed check must not leave the writer
  // waiting at a closed gate while the spool joins it.
  struct Opener {
    Gate& gate;
    ~Opener() { gate.set_closed(false); }
  } opener{gate};
  queue.settings.max_concurrent_deliveries = 1;
  queue.data_sync = [&gate](int) {
    gate.pass();
    return std::error_code{};
  };
  queue.start();
  const EnqueueResult first = queue.enqueue(envelope({"a@example.net"}), ordinary_mail("first"));
  const EnqueueResult second = queue.enqueue(envelope({"b@example.net"}), ordinary_mail("second"));
  REQUIRE(first);
  REQUIRE(second);
  REQUIRE(queue.agent.calls.size() == 1);  // the only slot

  gate.set_closed(true);
  queue.agent.answer(0, {delivered()});
  // The removal of the first message is written, not yet synced.
  REQUIRE(queue.loop.run_until([&] { return gate.waiting.load() == 1; }));
  queue.loop.run_posted();
  CHECK(queue.manager->statistics().in_flight == 0);
  CHECK(queue.manager->statistics().outcomes_unrecorded == 1);
  // A crash now repeats the first delivery; the second has not started, so
  // it cannot be a second one to repeat.
  CHECK(queue.agent.calls.size() == 1);
  CHECK(queue.spool->contains(first.id));

  gate.set_closed(false);
  REQUIRE(queue.loop.run_until([&] { return queue.agent.calls.size() == 2; }));
  CHECK_FALSE(queue.spool->contains(first.id));
  CHECK(queue.manager->statistics().outcomes_unrecorded == 0);
  CHECK(queue.agent.calls[1].recipients == std::vector<std::string>{"b@example.net"});
  queue.agent.answer(1, {delivered()});
  queue.settle();
  CHECK(queue.manager->list().empty());
}

TEST_CASE("a failed outcome write frees the slot for the retry's wait", "[queue]") {
  QueueFixture queue;
  queue.settings.max_concurrent_deliveries = 1;
  queue.start();
  queue.enqueue(envelope({"a@example.net"}), ordinary_mail("first"));
  queue.enqueue(envelope({"b@example.net"}), ordinary_mail("second"));
  REQUIRE(queue.agent.calls.size() == 1);
  // The disk fails: the first outcome cannot be recorded and waits for
  // storage_retry_delay; the second message must not wait that long.
  queue.spool->close();
  queue.agent.answer(0, {deferred()});
  queue.loop.run_posted();
  CHECK(queue.manager->statistics().outcomes_unrecorded == 0);
  CHECK(queue.agent.calls.size() == 2);
}

TEST_CASE("queue hold, release, flush and delete", "[queue]") {
  QueueFixture queue;
  queue.start();
  const EnqueueResult stored = queue.enqueue(envelope({"bob@example.net"}), ordinary_mail());
  queue.agent.answer(0, {deferred()});
  queue.settle();

  CHECK(queue.admin(&QueueManager::hold, stored.id) == AdminOutcome::done);
  CHECK(queue.find(stored.id)->held);
  CHECK(queue.manager->flush() == 0);
  queue.advance(30min);
  CHECK(queue.agent.calls.size() == 1);  // held: never attempted

  // Held survives a restart.
  queue.restart();
  CHECK(queue.find(stored.id)->held);
  CHECK(queue.agent.calls.empty());

  CHECK(queue.admin(&QueueManager::release, stored.id) == AdminOutcome::done);
  REQUIRE(queue.agent.calls.size() == 1);  // overdue: at once
  queue.agent.answer(0, {deferred()});
  queue.settle();
  CHECK(queue.find(stored.id)->next_attempt == queue.loop.now() + 10min);

  CHECK(queue.manager->flush(stored.id) == 1);
  queue.settle();
  REQUIRE(queue.agent.calls.size() == 2);
  queue.agent.answer(1, {deferred()});
  queue.settle();

  CHECK(queue.admin(&QueueManager::remove, stored.id) == AdminOutcome::done);
  CHECK(queue.manager->list().empty());
  CHECK(queue.admin(&QueueManager::remove, stored.id) == AdminOutcome::no_such_message);
  CHECK(queue.admin(&QueueManager::hold, "unknown") == AdminOutcome::no_such_message);
  CHECK(queue.admin(&QueueManager::release, "unknown") == AdminOutcome::no_such_message);
  queue.restart();
  CHECK(queue.manager->list().empty());
  queue.advance(2h);
  CHECK(queue.agent.calls.empty());
}

TEST_CASE("queue rebuilds state after a restart and never redelivers", "[queue]") {
  QueueFixture queue;
  queue.start();
  const EnqueueResult stored =
      queue.enqueue(envelope({"bob@example.net", "carol@example.net"}), ordinary_mail());
  queue.agent.answer(0, {delivered(), deferred()});
  queue.settle();
  const TimePoint retry_at = queue.loop.now() + 5min;

  queue.restart();
  const MessageSummary* summary = queue.find(stored.id);
  REQUIRE(summary);
  CHECK(summary->recipients == 2);
  CHECK(summary->pending == 1);
  CHECK(summary->next_attempt == retry_at);
  CHECK(queue.agent.calls.empty());

  queue.advance(5min);
  REQUIRE(queue.agent.calls.size() == 1);
  CHECK(queue.agent.calls[0].recipients == std::vector<std::string>{"carol@example.net"});
  queue.agent.answer(0, {delivered()});
  queue.settle();
  CHECK(queue.manager->list().empty());

  queue.restart();
  CHECK(queue.manager->list().empty());
  queue.advance(1h);
  CHECK(queue.agent.calls.empty());
}

TEST_CASE("queue sends a notification still owed when it stopped", "[queue]") {
  QueueFixture queue;
  queue.start();
  const EnqueueResult stored = queue.enqueue(envelope({"bob@example.net"}), ordinary_mail());
  REQUIRE(queue.agent.calls.size() == 1);
  // The daemon stops after recording the failure durably but before the
  // bounce is stored: simulated by writing that state straight to the spool.
  queue.manager->stop();
  MessageState failed;
  failed.recipients.resize(1);
  failed.recipients[0].status = RecipientStatus::failed;
  failed.recipients[0].attempts = 1;
  failed.recipients[0].last_reply = "550 5.2.1 mailbox disabled";
  bool recorded = false;
  queue.spool->record_state(stored.id, failed, [&](std::error_code error) {
    CHECK_FALSE(error);
    recorded = true;
  });
  REQUIRE(queue.loop.run_until([&] { return recorded; }));

  queue.restart();
  REQUIRE(queue.agent.calls.size() == 1);
  CHECK(queue.agent.calls[0].message.bounce);
  CHECK(queue.agent.calls[0].message.data->find("Status: 5.2.1") != std::string::npos);
  CHECK(queue.manager->list().size() == 1);  // the bounce itself
  CHECK_FALSE(queue.spool->contains(stored.id));
}

TEST_CASE("queue tells the sender when the message cannot be stored", "[queue]") {
  QueueFixture queue;
  queue.data_sync = [](int) { return std::make_error_code(std::errc::no_space_on_device); };
  queue.start();
  std::optional<EnqueueResult> result;
  queue.manager->enqueue(envelope({"bob@example.net"}), ordinary_mail(),
                         [&](EnqueueResult r) { result = r; });
  REQUIRE(queue.loop.run_until([&] { return result.has_value(); }));
  CHECK_FALSE(*result);
  CHECK(result->error == std::errc::no_space_on_device);
  queue.settle();
  CHECK(queue.agent.calls.empty());
  CHECK(queue.manager->list().empty());

  std::optional<EnqueueResult> refused;
  queue.manager->enqueue(envelope({}), ordinary_mail(), [&](EnqueueResult r) { refused = r; });
  REQUIRE(queue.loop.run_until([&] { return refused.has_value(); }));
  CHECK(refused->error == std::errc::invalid_argument);
}
