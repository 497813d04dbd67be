// Retry schedule and due list: see scheduler.h.
#include "queue/scheduler.h"

#include <algorithm>
#include <cmath>
#include <memory>
#include <random>

namespace stokend::queue {

RandomSource default_random_source() {
  auto engine = std::make_shared<std::mt19937_64>(std::random_device{}());
  return [engine] { return std::uniform_real_distribution<double>(0.0, 1.0)(*engine); };
}

std::vector<std::size_t> due_recipients(const MessageState& state, TimePoint now) {
  std::vector<std::size_t> due;
  for (std::size_t i = 0; i < state.recipients.size(); ++i) {
    const RecipientState& recipient = state.recipients[i];
    if (recipient.status == RecipientStatus::pending && recipient.next_attempt <= now) {
      due.push_back(i);
    }
  }
  return due;
}

std::optional<TimePoint> earliest_pending_attempt(const MessageState& state) {
  std::optional<TimePoint> earliest;
  for (const RecipientState& recipient : state.recipients) {
    if (recipient.status != RecipientStatus::pending) continue;
    if (!earliest || recipient.next_attempt < *earliest) earliest = recipient.next_attempt;
  }
  return earliest;
}

Scheduler::Scheduler(RetryPolicy policy, RandomSource random)
    : policy_(policy), random_(random ? std::move(random) : default_random_source()) {}

std::chrono::milliseconds Scheduler::retry_interval(std::uint32_t failed_attempts) {
  using std::chrono::duration;
  const double first = duration<double>(policy_.first_retry).count();
  const double maximum = duration<double>(policy_.max_retry_interval).count();
  const double exponent = failed_attempts > 0 ? failed_attempts - 1.0 : 0.0;
  // pow() overflows to infinity for large exponents; min() then caps it.
  const double base =
      std::min(first * std::pow(std::max(policy_.backoff_factor, 1.0), exponent), maximum);
  const double jitter = std::clamp(policy_.jitter, 0.0, 1.0);
  const double draw = std::clamp(random_(), 0.0, 1.0);
  const double seconds = base * (1.0 - jitter * draw);
  return std::chrono::milliseconds(static_cast<std::int64_t>(std::llround(seconds * 1000.0)));
}

TimePoint Scheduler::next_attempt(std::uint32_t failed_attempts, TimePoint arrival, TimePoint now) {
  const TimePoint wanted = now + retry_interval(failed_attempts);
  return std::max(now, std::min(wanted, expiry(arrival)));
}

bool Scheduler::delay_warning_due(TimePoint arrival, TimePoint now) const {
  return policy_.delay_warning_after.count() > 0 && now >= arrival + policy_.delay_warning_after;
}

void Scheduler::schedule(const std::string& id, Priority priority, TimePoint due) {
  unschedule(id);
  Key key{due, sequence_++, id};
  classes_[static_cast<int>(priority)].insert(key);
  entries_.emplace(id, Entry{priority, std::move(key)});
}

void Scheduler::unschedule(const std::string& id) {
  auto entry = entries_.find(id);
  if (entry == entries_.end()) return;
  classes_[static_cast<int>(entry->second.priority)].erase(entry->second.key);
  entries_.erase(entry);
}

std::optional<std::string> Scheduler::take_due(TimePoint now) {
  for (auto& keys : classes_) {  // chat first
    if (keys.empty() || std::get<0>(*keys.begin()) > now) continue;
    std::string id = std::get<2>(*keys.begin());
    unschedule(id);
    return id;
  }
  return std::nullopt;
}

std::optional<TimePoint> Scheduler::next_due() const {
  std::optional<TimePoint> earliest;
  for (const auto& keys : classes_) {
    if (keys.empty()) continue;
    const TimePoint due = std::get<0>(*keys.begin());
    if (!earliest || due < *earliest) earliest = due;
  }
  return earliest;
}

}  // namespace stokend::queue
