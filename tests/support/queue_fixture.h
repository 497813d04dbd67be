// A test bed for the queue (queue/queue_manager.h): a fake delivery agent
// the test answers, a real spool in a temporary folder, and a hand-driven
// loop and clock. Shared by the queue manager's test files.
#pragma once

#include <unistd.h>

#include <catch2/catch.hpp>
#include <chrono>
#include <filesystem>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "queue/queue_manager.h"
#include "tests/support/manual_event_loop.h"
#include "tests/support/temporary_directory.h"

namespace stokend::testing::queue_fixture {

using namespace stokend;
using namespace stokend::queue;
using namespace std::chrono_literals;
using Outcome = RecipientResult::Outcome;

// Records every delivery; the test answers them (or `respond` does at once).
class FakeAgent : public DeliveryAgent {
 public:
  struct Call {
    QueuedMessage message;
    std::vector<std::string> recipients;
    Done done;
    bool answered = false;
  };

  void deliver(const QueuedMessage& message, std::span<const std::string> recipients,
               Done done) override {
    calls.push_back(Call{message, {recipients.begin(), recipients.end()}, std::move(done)});
    if (respond) answer(calls.size() - 1, respond(calls.back()));
  }

  void answer(std::size_t index, std::vector<RecipientResult> results) {
    REQUIRE(index < calls.size());
    REQUIRE_FALSE(calls[index].answered);
    calls[index].answered = true;
    Done done = calls[index].done;
    done(std::move(results));
  }
  void answer_all(std::size_t index, Outcome outcome, const std::string& reply) {
    answer(index, std::vector<RecipientResult>(calls.at(index).recipients.size(),
                                               RecipientResult{outcome, reply, {}}));
  }

  std::function<std::vector<RecipientResult>(const Call&)> respond;
  std::vector<Call> calls;
};

inline RecipientResult delivered() { return {Outcome::delivered, "250 2.0.0 Ok", {}}; }
inline RecipientResult deferred(std::string reply = "451 4.7.1 Try again later") {
  return {Outcome::temporary_failure, std::move(reply), {}};
}
inline RecipientResult rejected(std::string reply = "550 5.1.1 <x>: Recipient address rejected") {
  return {Outcome::permanent_failure, std::move(reply), {}};
}

inline std::string ordinary_mail(const std::string& subject = "Hello") {
  return "From: alice@example.org\r\nSubject: " + subject +
         "\r\nMessage-ID: <1@example.org>\r\n\r\nHi\r\n";
}
inline std::string chat_mail() {
  return "From: alice@example.org\r\nChat-Version: 1.0\r\nSubject: chat\r\n\r\nyo\r\n";
}

inline Envelope envelope(std::vector<std::string> recipients,
                         std::string sender = "alice@example.org") {
  Envelope result;
  result.sender = std::move(sender);
  result.recipients = std::move(recipients);
  return result;
}

class QueueFixture {
 public:
  QueueFixture() {
    settings.reporting_host = "mx.example.org";
    settings.retry.jitter = 0.2;  // drawn as 0: no shortening, exact times
  }
  ~QueueFixture() { shut_down(); }

  void start() {
    SpoolOptions options;
    options.directory = directory.path();
    options.clock = loop.clock();
    options.data_sync = data_sync;
    spool = std::make_unique<Spool>(loop, options);
    RecoveryReport report = spool->open();
    REQUIRE_FALSE(report.error);
    manager = std::make_unique<QueueManager>(loop, *spool, agent, settings, loop.clock(),
                                             [] { return 0.0; });
    manager->start(std::move(report.messages));
    settle();
  }
  void shut_down() {
    manager.reset();
    spool.reset();
  }
  void restart() {
    shut_down();
    agent.calls.clear();
    start();
  }

  EnqueueResult enqueue(Envelope envelope, std::string data) {
    std::optional<EnqueueResult> result;
    manager->enqueue(std::move(envelope), std::move(data),
                     [&](EnqueueResult outcome) { result = std::move(outcome); });
    REQUIRE(loop.run_until([&] { return result.has_value(); }));
    settle();
    return *result;
  }

  // Runs the loop until the spool's writer has nothing more to report.
  void settle() {
    REQUIRE(loop.run_until([&] { return spool->requests_in_flight() == 0; }));
    loop.run_posted();
  }
  // Moves the clock in steps, letting each step's work finish.
  void advance(std::chrono::milliseconds total, std::chrono::milliseconds step = 1min) {
    for (std::chrono::milliseconds done{0}; done < total; done += step) {
      loop.advance(std::min(step, total - done));
      settle();
    }
  }

  AdminOutcome admin(void (QueueManager::*action)(const std::string&, QueueManager::AdminDone),
                     const std::string& id) {
    std::optional<AdminOutcome> outcome;
    (manager.get()->*action)(id, [&](AdminOutcome result) { outcome = result; });
    REQUIRE(loop.run_until([&] { return outcome.has_value(); }));
    settle();
    return *outcome;
  }

  const MessageSummary* find(const std::string& id) {
    summaries = manager->list();
    for (const auto& summary : summaries) {
      if (summary.id == id) return &summary;
    }
    return nullptr;
  }

  TemporaryDirectory directory;
  ManualEventLoop loop;
  FakeAgent agent;
  QueueSettings settings;
  // Durability across a real crash is the spool tests' business; here a
  // restart within the process reads the same page cache, so skip the wait.
  SegmentAppender::DataSync data_sync = [](int) { return std::error_code{}; };
  std::unique_ptr<Spool> spool;
  std::unique_ptr<QueueManager> manager;
  std::vector<MessageSummary> summaries;
};

}  // namespace stokend::testing::queue_fixture
