// The queue's administration: list, show, flush, hold, release, requeue and delete
// (stokenctl queue ...). See queue_manager.h.
#include <spdlog/spdlog.h>

#include <algorithm>

#include "queue/queue_manager.h"

namespace stokend::queue {
namespace {

// The header section of a message, up to the empty line.
std::string header_section(std::string_view data) {
  const std::size_t end = data.find("\r\n\r\n");
  return std::string(end == std::string_view::npos ? data : data.substr(0, end + 2));
}

}  // namespace

MessageSummary QueueManager::summarise(const Entry& entry) const {
  MessageSummary summary;
  summary.id = entry.message.id;
  summary.sender = entry.message.envelope.sender;
  summary.arrival = entry.message.arrival;
  summary.size = entry.message.size;
  summary.chat = entry.message.chat;
  summary.bounce = entry.message.bounce;
  summary.held = entry.state.held;
  summary.in_flight = entry.in_flight;
  summary.recipients = entry.state.recipients.size();
  summary.pending = static_cast<std::size_t>(
      std::count_if(entry.state.recipients.begin(), entry.state.recipients.end(),
                    [](const RecipientState& r) { return r.status == RecipientStatus::pending; }));
  summary.next_attempt = earliest_pending_attempt(entry.state);
  return summary;
}

std::vector<MessageSummary> QueueManager::list() const {
  std::vector<MessageSummary> summaries;
  summaries.reserve(messages_.size());
  for (const auto& [id, entry] : messages_) {
    if (!entry.removing) summaries.push_back(summarise(entry));
  }
  std::sort(summaries.begin(), summaries.end(), [](const auto& a, const auto& b) {
    return a.arrival != b.arrival ? a.arrival < b.arrival : a.id < b.id;
  });
  return summaries;
}

std::optional<MessageDetails> QueueManager::show(const std::string& id) const {
  auto found = messages_.find(id);
  if (found == messages_.end() || found->second.removing) return std::nullopt;
  const Entry& entry = found->second;
  MessageDetails details;
  details.summary = summarise(entry);
  details.recipients = entry.message.envelope.recipients;
  details.state = entry.state;
  std::shared_ptr<const std::string> data = entry.message.data;
  if (!data) data = spool_.load_data(id).data;
  if (data) details.headers = header_section(*data);
  return details;
}

std::size_t QueueManager::flush(const std::string& id) {
  const TimePoint now = clock_();
  std::size_t count = 0;
  const auto flush_one = [&](const std::string& key, Entry& entry) {
    if (entry.state.held || entry.removing || entry.in_flight) return;
    bool any = false;
    for (RecipientState& recipient : entry.state.recipients) {
      if (recipient.status != RecipientStatus::pending) continue;
      // In memory only: a restart simply falls back to the recorded time.
      recipient.next_attempt = std::min(recipient.next_attempt, now);
      any = true;
    }
    if (!any) return;
    schedule(key, entry);
    ++count;
  };
  if (id.empty()) {
    for (auto& [key, entry] : messages_) flush_one(key, entry);
  } else if (auto found = messages_.find(id); found != messages_.end()) {
    flush_one(id, found->second);
  }
  dispatch();
  return count;
}

void QueueManager::hold(const std::string& id, AdminDone done) {
  auto found = messages_.find(id);
  if (found == messages_.end() || found->second.removing) {
    done(AdminOutcome::no_such_message);
    return;
  }
  found->second.state.held = true;
  scheduler_.unschedule(id);
  persist(id, [id, done = std::move(done)](std::error_code error) {
    if (error) spdlog::error("queue: {}: cannot record hold: {}", id, error.message());
    spdlog::info("queue: {} held", id);
    done(error ? AdminOutcome::storage_failed : AdminOutcome::done);
  });
}

void QueueManager::release(const std::string& id, AdminDone done) {
  auto found = messages_.find(id);
  if (found == messages_.end() || found->second.removing) {
    done(AdminOutcome::no_such_message);
    return;
  }
  found->second.state.held = false;
  schedule(id, found->second);
  persist(id, [id, done = std::move(done)](std::error_code error) {
    if (error) spdlog::error("queue: {}: cannot record release: {}", id, error.message());
    spdlog::info("queue: {} released", id);
    done(error ? AdminOutcome::storage_failed : AdminOutcome::done);
  });
  dispatch();
}

void QueueManager::requeue(const std::string& id, AdminDone done) {
  auto found = messages_.find(id);
  if (found == messages_.end() || found->second.removing) {
    done(AdminOutcome::no_such_message);
    return;
  }
  Entry& entry = found->second;
  const TimePoint now = clock_();
  entry.state.held = false;
  for (RecipientState& recipient : entry.state.recipients) {
    if (recipient.status == RecipientStatus::pending) recipient.next_attempt = now;
  }
  schedule(id, entry);  // not while a delivery runs: its outcome reschedules
  persist(id, [id, done = std::move(done)](std::error_code error) {
    if (error) spdlog::error("queue: {}: cannot record requeue: {}", id, error.message());
    spdlog::info("queue: {} requeued", id);
    done(error ? AdminOutcome::storage_failed : AdminOutcome::done);
  });
  dispatch();
}

void QueueManager::remove(const std::string& id, AdminDone done) {
  auto found = messages_.find(id);
  if (found == messages_.end() || found->second.removing) {
    done(AdminOutcome::no_such_message);
    return;
  }
  found->second.removing = true;
  scheduler_.unschedule(id);
  spool_.remove(id, [this, alive = alive(), id, done = std::move(done)](std::error_code error) {
    if (alive.expired()) return;
    auto found = messages_.find(id);
    if (error) {
      spdlog::error("queue: {}: cannot delete: {}", id, error.message());
      if (found != messages_.end()) {
        found->second.removing = false;
        schedule(id, found->second);
      }
      done(AdminOutcome::storage_failed);
      return;
    }
    spdlog::info("queue: {} deleted by the administrator", id);
    // A delivery still running finds the entry gone and its result is dropped.
    if (found != messages_.end()) {
      drop_data(found->second);
      if (found->second.outcome_unrecorded) --outcomes_unrecorded_;
      messages_.erase(found);
    }
    done(AdminOutcome::done);
    dispatch();
  });
}

QueueManager::Statistics QueueManager::statistics() const {
  Statistics statistics;
  statistics.messages = messages_.size();
  statistics.in_flight = in_flight_;
  statistics.outcomes_unrecorded = outcomes_unrecorded_;
  statistics.scheduled = scheduler_.size();
  statistics.resident_data_bytes = resident_bytes_;
  for (const auto& [id, entry] : messages_) {
    if (entry.state.held) ++statistics.held;
    statistics.bytes += entry.message.size;
    if (!statistics.oldest_arrival || entry.message.arrival < *statistics.oldest_arrival) {
      statistics.oldest_arrival = entry.message.arrival;
    }
  }
  return statistics;
}

}  // namespace stokend::queue
