// Unit tests for the retry schedule and due list (queue/scheduler.h).
#include <catch2/catch.hpp>
#include <chrono>
#include <vector>

#include "queue/scheduler.h"

using namespace stokend;
using namespace stokend::queue;
using namespace std::chrono_literals;

namespace {

RandomSource fixed(double value) {
  return [value] { return value; };
}

const TimePoint start = TimePoint(std::chrono::hours(24 * 365 * 56));

}  // namespace

TEST_CASE("scheduler defaults follow the Postfix-like schedule", "[queue]") {
  const RetryPolicy policy;
  CHECK(policy.first_retry == 5min);
  CHECK(policy.backoff_factor == 2.0);
  CHECK(policy.max_retry_interval == 1h);
  CHECK(policy.lifetime == 5 * 24h);
  CHECK(policy.delay_warning_after == 4h);
}

TEST_CASE("scheduler backoff doubles from five minutes up to an hour", "[queue]") {
  RetryPolicy policy;
  policy.jitter = 0.2;
  Scheduler scheduler(policy, fixed(0.0));  // no shortening drawn
  std::vector<std::chrono::minutes> intervals;
  for (std::uint32_t attempt = 1; attempt <= 8; ++attempt) {
    intervals.push_back(
        std::chrono::duration_cast<std::chrono::minutes>(scheduler.retry_interval(attempt)));
  }
  CHECK(intervals ==
        std::vector<std::chrono::minutes>{5min, 10min, 20min, 40min, 60min, 60min, 60min, 60min});
  // Far past any sensible count the interval stays at the maximum.
  CHECK(scheduler.retry_interval(100000) == 1h);
}

TEST_CASE("scheduler jitter shortens each interval by at most its fraction", "[queue]") {
  RetryPolicy policy;
  policy.jitter = 0.2;
  Scheduler half(policy, fixed(0.5));
  CHECK(half.retry_interval(1) == std::chrono::milliseconds(270'000));    // 5 min * 0.9
  CHECK(half.retry_interval(6) == std::chrono::milliseconds(3'240'000));  // 1 h * 0.9
  Scheduler most(policy, fixed(0.999999));
  CHECK(most.retry_interval(1) >= 240s);
  CHECK(most.retry_interval(1) <= 300s);
  // A sequence of draws, as a real generator would give.
  std::vector<double> draws{0.0, 1.0, 0.25};
  std::size_t next = 0;
  Scheduler sequence(policy, [&] { return draws[next++ % draws.size()]; });
  CHECK(sequence.retry_interval(1) == 300s);
  CHECK(sequence.retry_interval(1) == 240s);
  CHECK(sequence.retry_interval(1) == 285s);
}

TEST_CASE("scheduler never schedules past the lifetime", "[queue]") {
  RetryPolicy policy;
  policy.jitter = 0;
  policy.lifetime = 2h;
  Scheduler scheduler(policy, fixed(0));
  CHECK(scheduler.next_attempt(1, start, start) == start + 5min);
  // Ten minutes before the end, an hour's wait is cut to the end itself:
  // the last attempt happens when the lifetime runs out.
  CHECK(scheduler.next_attempt(9, start, start + 110min) == start + 2h);
  CHECK_FALSE(scheduler.expired(start, start + 2h - 1s));
  CHECK(scheduler.expired(start, start + 2h));
  CHECK_FALSE(scheduler.delay_warning_due(start, start + 2h));  // 4 h by default
  policy.delay_warning_after = 0s;
  CHECK_FALSE(Scheduler(policy, fixed(0)).delay_warning_due(start, start + 100h));
  policy.delay_warning_after = 1h;
  CHECK(Scheduler(policy, fixed(0)).delay_warning_due(start, start + 1h));
}

TEST_CASE("scheduler takes due chat mail before due ordinary mail", "[queue]") {
  Scheduler scheduler(RetryPolicy{}, fixed(0));
  scheduler.schedule("ordinary-early", Priority::ordinary, start - 10min);
  scheduler.schedule("ordinary-late", Priority::ordinary, start - 1min);
  scheduler.schedule("chat-late", Priority::chat, start - 1s);
  scheduler.schedule("chat-future", Priority::chat, start + 1min);
  CHECK(scheduler.size() == 4);
  CHECK(scheduler.next_due() == start - 10min);

  CHECK(scheduler.take_due(start) == "chat-late");  // chat first, though due later
  CHECK(scheduler.take_due(start) == "ordinary-early");
  CHECK(scheduler.take_due(start) == "ordinary-late");
  CHECK_FALSE(scheduler.take_due(start));  // chat-future is not due yet
  CHECK(scheduler.next_due() == start + 1min);
  CHECK(scheduler.take_due(start + 1min) == "chat-future");
  CHECK_FALSE(scheduler.next_due());
}

TEST_CASE("scheduler rescheduling replaces, and equal times keep their order", "[queue]") {
  Scheduler scheduler(RetryPolicy{}, fixed(0));
  scheduler.schedule("a", Priority::ordinary, start);
  scheduler.schedule("b", Priority::ordinary, start);
  scheduler.schedule("c", Priority::ordinary, start);
  scheduler.schedule("a", Priority::ordinary, start + 1h);  // moved back
  CHECK(scheduler.size() == 3);
  CHECK(scheduler.take_due(start) == "b");
  CHECK(scheduler.take_due(start) == "c");
  CHECK_FALSE(scheduler.take_due(start));
  scheduler.unschedule("a");
  CHECK_FALSE(scheduler.scheduled("a"));
  CHECK(scheduler.size() == 0);
}

TEST_CASE("scheduler picks the due recipients of a message", "[queue]") {
  MessageState state;
  state.recipients.resize(4);
  state.recipients[0].next_attempt = start - 1s;
  state.recipients[1].status = RecipientStatus::delivered;
  state.recipients[2].next_attempt = start + 1h;
  state.recipients[3].next_attempt = start;
  CHECK(due_recipients(state, start) == std::vector<std::size_t>{0, 3});
  CHECK(earliest_pending_attempt(state) == start - 1s);
  for (auto& recipient : state.recipients) recipient.status = RecipientStatus::failed;
  CHECK_FALSE(earliest_pending_attempt(state));
}
