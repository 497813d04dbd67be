// When to try a message again, and which message to try next.
//
// Retry schedule: after the n-th failed attempt a recipient waits
//   min(first_retry * backoff_factor^(n-1), max_retry_interval)
// shortened by a random fraction of up to `jitter` (so it never exceeds the
// maximum, and messages deferred together spread out), and never past the
// end of the message's lifetime, so the last attempt happens when the
// lifetime ends. With the defaults: about 5, 10, 20, 40 minutes, then hourly
// for 5 days, in the spirit of Postfix's minimal_backoff_time 300s and
// maximal_backoff_time 4000s.
//
// Order: every message is in one of two priority classes. A due chat message
// is always taken before a due ordinary one (DESIGN.md, chat detection: chat
// mail gets the priority lane); within a class, the one due earliest first,
// then the one scheduled first.
//
// Contract: not thread-safe (the loop thread owns it). The random source is
// injected so tests are deterministic; it returns values in [0, 1).
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <optional>
#include <set>
#include <string>
#include <tuple>
#include <unordered_map>
#include <vector>

#include "queue/queue_defaults.h"
#include "queue/queued_message.h"

namespace stokend::queue {

using Clock = std::function<TimePoint()>;
using RandomSource = std::function<double()>;

// A random source seeded from the system's entropy.
RandomSource default_random_source();

struct RetryPolicy {
  std::chrono::seconds first_retry = defaults::first_retry;
  double backoff_factor = defaults::backoff_factor;
  std::chrono::seconds max_retry_interval = defaults::max_retry_interval;
  double jitter = defaults::retry_jitter;  // 0 .. 1
  std::chrono::seconds lifetime = defaults::message_lifetime;
  std::chrono::seconds delay_warning_after = defaults::delay_warning_after;  // 0s: never
};

enum class Priority : std::uint8_t { chat = 0, ordinary = 1 };

inline Priority priority_of(const QueuedMessage& message) {
  return message.chat ? Priority::chat : Priority::ordinary;
}

// Recipients of a message that are pending and due at `now`.
std::vector<std::size_t> due_recipients(const MessageState& state, TimePoint now);
// The earliest next attempt among pending recipients; nothing when none is pending.
std::optional<TimePoint> earliest_pending_attempt(const MessageState& state);

class Scheduler {
 public:
  Scheduler(RetryPolicy policy, RandomSource random);

  const RetryPolicy& policy() const { return policy_; }

  // The wait after the failed_attempts-th failure (1 for the first), jitter
  // included.
  std::chrono::milliseconds retry_interval(std::uint32_t failed_attempts);
  // When to try again after a failure at `now`, capped at the lifetime's end.
  TimePoint next_attempt(std::uint32_t failed_attempts, TimePoint arrival, TimePoint now);
  TimePoint expiry(TimePoint arrival) const { return arrival + policy_.lifetime; }
  bool expired(TimePoint arrival, TimePoint now) const { return now >= expiry(arrival); }
  bool delay_warning_due(TimePoint arrival, TimePoint now) const;

  // The due list. schedule() replaces an earlier entry for the same id.
  void schedule(const std::string& id, Priority priority, TimePoint due);
  void unschedule(const std::string& id);
  bool scheduled(const std::string& id) const { return entries_.contains(id); }
  // Removes and returns the next message due at `now`, if any.
  std::optional<std::string> take_due(TimePoint now);
  // When the next message becomes due, if any is scheduled.
  std::optional<TimePoint> next_due() const;
  std::size_t size() const { return entries_.size(); }

 private:
  using Key = std::tuple<TimePoint, std::uint64_t, std::string>;  // due, order scheduled, id
  struct Entry {
    Priority priority;
    Key key;
  };

  RetryPolicy policy_;
  RandomSource random_;
  std::set<Key> classes_[2];  // indexed by Priority
  std::unordered_map<std::string, Entry> entries_;
  std::uint64_t sequence_ = 0;
};

}  // namespace stokend::queue
