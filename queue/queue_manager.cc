// The queue: accepting, scheduling, delivering, recording results,
// notifications and removal. See queue_manager.h; administration is in
// queue_manager_admin.cc.
#include "queue/queue_manager.h"

#include <spdlog/spdlog.h>

#include <algorithm>

#include "common/log_lines.h"
#include "common/service_log.h"
#include "message/headers.h"
#include "queue/dsn.h"
#include "queue/queue_metrics.h"

namespace stokend::queue {
namespace {

bool all_final(const MessageState& state) {
  return std::all_of(state.recipients.begin(), state.recipients.end(),
                     [](const RecipientState& r) { return is_final(r.status); });
}

// NOTIFY=SUCCESS (RFC 3461 §5.2.3): a delivered recipient is reported once,
// unless the next hop took the DSN parameters over and reports itself.
bool success_report_owed(const Envelope& envelope, std::size_t index,
                         const RecipientState& recipient) {
  return recipient.status == RecipientStatus::delivered && !recipient.success_reported &&
         recipient.handoff != Handoff::relayed_with_dsn &&
         (envelope.dsn_of(index).notify & notify::success) != 0;
}

const char* outcome_name(RecipientResult::Outcome outcome) {
  switch (outcome) {
    case RecipientResult::Outcome::delivered:
      return "delivered";
    case RecipientResult::Outcome::temporary_failure:
      return "deferred";
    case RecipientResult::Outcome::permanent_failure:
      return "failed";
  }
  return "?";
}

double seconds_between(TimePoint from, TimePoint to) {
  return std::chrono::duration<double>(to - from).count();
}

log_lines::Status log_status(RecipientResult::Outcome outcome) {
  switch (outcome) {
    case RecipientResult::Outcome::delivered:
      return log_lines::Status::sent;
    case RecipientResult::Outcome::permanent_failure:
      return log_lines::Status::bounced;
    case RecipientResult::Outcome::temporary_failure:
      break;
  }
  return log_lines::Status::deferred;
}

}  // namespace

QueueManager::QueueManager(EventLoop& loop, Spool& spool, DeliveryAgent& agent,
                           QueueSettings settings, Clock clock, RandomSource random)
    : loop_(loop),
      spool_(spool),
      agent_(agent),
      settings_(std::move(settings)),
      clock_(clock ? std::move(clock) : Clock([] { return std::chrono::system_clock::now(); })),
      scheduler_(settings_.retry, std::move(random)) {
  if (settings_.max_concurrent_deliveries == 0) settings_.max_concurrent_deliveries = 1;
  if (settings_.reporting_host.empty()) settings_.reporting_host = "localhost";
}

QueueManager::~QueueManager() { stop(); }

void QueueManager::stop() {
  stopped_ = true;
  wakeup_.reset();
  wakeup_at_.reset();
  for (auto& [id, entry] : messages_) entry.retry_timer.reset();
}

// ---------------------------------------------------------------- start and enqueue

void QueueManager::start(std::vector<RecoveredMessage> recovered) {
  std::vector<std::string> ids;
  ids.reserve(recovered.size());
  for (RecoveredMessage& item : recovered) {
    if (item.state.recipients.size() != item.message.envelope.recipients.size()) {
      item.state = initial_state(item.message);
    }
    const std::string id = item.message.id;
    Entry& entry = messages_[id];
    auto data = std::move(item.message.data);  // recovery reads none, but count any
    entry.message = std::move(item.message);
    keep_data(entry, std::move(data));
    entry.state = std::move(item.state);
    schedule(id, entry);
    ids.push_back(id);
  }
  started_ = true;
  // Notifications owed and removals left undone when the daemon stopped.
  for (const std::string& id : ids) advance(id);
  dispatch();
}

void QueueManager::enqueue(Envelope envelope, std::string data, EnqueueDone done) {
  if (stopped_ || envelope.recipients.empty()) {
    const auto error = std::make_error_code(stopped_ ? std::errc::operation_canceled
                                                     : std::errc::invalid_argument);
    loop_.post([done = std::move(done), error] { done(EnqueueResult{error, {}}); });
    return;
  }
  QueuedMessage message;
  message.id = spool_.new_message_id();
  message.envelope = std::move(envelope);
  message.arrival = clock_();
  message.chat = message::is_chat_message(data);
  message.size = data.size();
  message.data = std::make_shared<const std::string>(std::move(data));
  store_new(std::move(message), std::move(done));
}

void QueueManager::store_new(QueuedMessage message, EnqueueDone done) {
  auto shared = std::make_shared<QueuedMessage>(std::move(message));
  spool_.store(
      *shared, [this, alive = alive(), shared, done = std::move(done)](std::error_code error) {
        if (alive.expired()) return;
        if (error) {
          spdlog::error("queue: cannot store message {}: {}", shared->id, error.message());
          if (done) done(EnqueueResult{error, shared->id});
          return;
        }
        const std::string id = shared->id;
        Entry& entry = messages_[id];
        entry.state = initial_state(*shared);
        if (shared->envelope.hold) {
          store_held(id, entry, std::move(shared), std::move(done));
          return;
        }
        auto data = std::move(shared->data);
        entry.message = std::move(*shared);
        keep_data(entry, std::move(data));
        spdlog::info("queue: {} stored: from=<{}> recipients={} size={}{}{}", id,
                     entry.message.envelope.sender, entry.message.envelope.recipients.size(),
                     entry.message.size, entry.message.chat ? " chat" : "",
                     entry.message.bounce ? " bounce" : "");
        schedule(id, entry);
        // The sender hears "stored" before delivery starts.
        if (done) done(EnqueueResult{{}, id});
        dispatch();
        // Waiting for a free delivery slot, the data stays in memory within
        // the budget; beyond it, it is read back from the spool when its
        // turn comes.
        if (auto waiting = messages_.find(id); waiting != messages_.end() &&
                                               !waiting->second.in_flight &&
                                               resident_bytes_ > settings_.waiting_data_budget) {
          drop_data(waiting->second);
        }
      });
}

void QueueManager::store_held(const std::string& id, Entry& entry,
                              std::shared_ptr<QueuedMessage> message, EnqueueDone done) {
  // Quarantined on arrival: the held state is durable before the sender
  // hears "stored", so no restart can deliver it unreleased.
  entry.state.held = true;
  entry.message = std::move(*message);
  entry.message.data.reset();  // read back from the spool if it is released
  spdlog::info("queue: {} stored held: from=<{}> recipients={} size={}", id,
               entry.message.envelope.sender, entry.message.envelope.recipients.size(),
               entry.message.size);
  persist(id, [id, done = std::move(done)](std::error_code error) {
    if (error) spdlog::error("queue: {}: cannot record hold: {}", id, error.message());
    if (done) done(EnqueueResult{error, id});
  });
}

void QueueManager::keep_data(Entry& entry, std::shared_ptr<const std::string> data) {
  drop_data(entry);
  if (data) resident_bytes_ += data->size();
  entry.message.data = std::move(data);
}

void QueueManager::drop_data(Entry& entry) {
  if (!entry.message.data) return;
  resident_bytes_ -= entry.message.data->size();
  entry.message.data.reset();
}

// ---------------------------------------------------------------- scheduling

void QueueManager::schedule(const std::string& id, Entry& entry) {
  if (entry.state.held || entry.removing || entry.in_flight) {
    scheduler_.unschedule(id);
    return;
  }
  if (auto due = earliest_pending_attempt(entry.state)) {
    scheduler_.schedule(id, priority_of(entry.message), *due);
  } else {
    scheduler_.unschedule(id);
  }
}

void QueueManager::dispatch() {
  if (stopped_ || !started_) return;
  if (dispatching_) {
    dispatch_again_ = true;  // an agent completed synchronously: loop again
    return;
  }
  dispatching_ = true;
  do {
    dispatch_again_ = false;
    const TimePoint now = clock_();
    while (slots_taken() < settings_.max_concurrent_deliveries && !stopped_) {
      std::optional<std::string> id = scheduler_.take_due(now);
      if (!id) break;
      auto entry = messages_.find(*id);
      if (entry == messages_.end() || entry->second.in_flight || entry->second.removing ||
          entry->second.state.held) {
        continue;
      }
      start_delivery(*id, entry->second, now);
    }
  } while (dispatch_again_);
  dispatching_ = false;
  arm_wakeup();
}

void QueueManager::arm_wakeup() {
  const std::optional<TimePoint> next = scheduler_.next_due();
  if (stopped_ || !next || slots_taken() >= settings_.max_concurrent_deliveries) {
    // At the limit, the next completion or recorded outcome dispatches again.
    wakeup_.reset();
    wakeup_at_.reset();
    return;
  }
  if (wakeup_ && wakeup_at_ == next) return;
  const auto delay = std::max(std::chrono::milliseconds(0),
                              std::chrono::ceil<std::chrono::milliseconds>(*next - clock_()));
  wakeup_at_ = next;
  wakeup_ = loop_.run_after(delay, [this, alive = alive()] {
    if (alive.expired()) return;
    wakeup_.reset();
    wakeup_at_.reset();
    dispatch();
  });
}

// ---------------------------------------------------------------- delivery

void QueueManager::start_delivery(const std::string& id, Entry& entry, TimePoint now) {
  std::vector<std::size_t> indices = due_recipients(entry.state, now);
  if (indices.empty()) {
    schedule(id, entry);
    return;
  }
  entry.in_flight = true;
  ++in_flight_;

  if (!entry.message.data) {
    Spool::Loaded loaded = spool_.load_data(id);
    if (loaded.error) {
      spdlog::error("queue: {}: cannot read the message from the spool: {}", id,
                    loaded.error.message());
      std::vector<RecipientResult> results(
          indices.size(),
          RecipientResult{RecipientResult::Outcome::temporary_failure,
                          "451 4.3.0 queue file unreadable: " + loaded.error.message(),
                          {}});
      on_delivered(id, indices, std::move(results), now);
      return;
    }
    keep_data(entry, std::move(loaded.data));
  }

  service_log(Service::qmgr)
      .info("{}: from=<{}>, size={}, nrcpt={} (queue active)", id,
            log_lines::printable(entry.message.envelope.sender), entry.message.size,
            entry.message.envelope.recipients.size());

  std::vector<std::string> recipients;
  recipients.reserve(indices.size());
  for (std::size_t index : indices) recipients.push_back(entry.message.envelope.recipients[index]);

  // The agent must call back once; a second call is ignored rather than
  // trusted, since it would corrupt the in-flight count.
  auto called = std::make_shared<bool>(false);
  agent_.deliver(
      entry.message, recipients,
      [this, alive = alive(), id, indices, called, now](std::vector<RecipientResult> results) {
        if (alive.expired() || *called) return;
        *called = true;
        on_delivered(id, indices, std::move(results), now);
      });
  // `entry` may be gone now: the agent may have completed synchronously.
}

void QueueManager::on_delivered(const std::string& id, const std::vector<std::size_t>& indices,
                                std::vector<RecipientResult> results, TimePoint started) {
  --in_flight_;
  auto found = messages_.find(id);
  if (found != messages_.end()) found->second.in_flight = false;
  if (found == messages_.end() || found->second.removing) {
    dispatch();
    return;
  }
  Entry& entry = found->second;
  const TimePoint now = clock_();
  for (std::size_t k = 0; k < indices.size(); ++k) {
    RecipientResult result =
        k < results.size() ? std::move(results[k])
                           : RecipientResult{RecipientResult::Outcome::temporary_failure,
                                             "451 4.3.0 the delivery agent reported no result",
                                             {}};
    // Postfix's delays=a/b/c/d: stokend's smtpd writes the spool itself
    // (nothing before the queue), and connection setup is part of the
    // transmission here.
    log_lines::Delivery line;
    line.recipient = entry.message.envelope.recipients[indices[k]];
    line.relay = result.relay;
    line.in_queue = seconds_between(entry.message.arrival, started);
    line.transmission = seconds_between(started, now);
    line.status = log_status(result.outcome);
    line.reply = result.reply;
    service_log(result.service).info("{}: {}", id, log_lines::delivery(line));
    RecipientState& recipient = entry.state.recipients[indices[k]];
    ++recipient.attempts;
    recipient.last_attempt = now;
    recipient.last_reply = std::move(result.reply);
    switch (result.outcome) {
      case RecipientResult::Outcome::delivered:
        recipient.status = RecipientStatus::delivered;
        recipient.handoff = result.handoff;
        queue_metrics().delivery_latency_seconds.observe(  // wall clock: never below 0
            std::max(0.0, std::chrono::duration<double>(now - entry.message.arrival).count()));
        break;
      case RecipientResult::Outcome::permanent_failure:
        recipient.status = RecipientStatus::failed;
        break;
      case RecipientResult::Outcome::temporary_failure:
        if (scheduler_.expired(entry.message.arrival, now)) {
          recipient.status = RecipientStatus::expired;
          service_log(Service::qmgr)
              .info("{}: to=<{}>, status=expired, returned to sender", id,
                    log_lines::printable(entry.message.envelope.recipients[indices[k]]));
        } else {
          recipient.next_attempt =
              scheduler_.next_attempt(recipient.attempts, entry.message.arrival, now);
        }
        break;
    }
    spdlog::info(
        "queue: {} to=<{}> {} after {} attempts: {}", id,
        entry.message.envelope.recipients[indices[k]],
        recipient.status == RecipientStatus::expired ? "expired" : outcome_name(result.outcome),
        recipient.attempts, recipient.last_reply);
  }
  // Large messages are not kept in memory between attempts.
  drop_data(entry);
  schedule(id, entry);
  // The slot stays taken until the outcome written below is durable.
  if (!entry.outcome_unrecorded) {
    entry.outcome_unrecorded = true;
    ++outcomes_unrecorded_;
  }
  const bool all_delivered =
      std::all_of(entry.state.recipients.begin(), entry.state.recipients.end(),
                  [](const RecipientState& recipient) {
                    return recipient.status == RecipientStatus::delivered;
                  });
  // Stopping, advance() removes nothing: then the state record must carry it.
  if (all_delivered && entry.state_writes == 0 && !stopped_) {
    // Nothing is left to report or retry: the removal record alone makes
    // "done" durable, so the state record before it would be one more sync
    // for nothing (a crash before either is synced redelivers, with or
    // without it). With one client that sync is what a message waits for.
    entry.state_dirty = false;
    advance(id);
  } else {
    persist_and_advance(id);
  }
  // Nothing was written (a notification is being enqueued, whose completion
  // records the state): then there is no write to wait for.
  if (auto written = messages_.find(id); written != messages_.end() && !written->second.removing &&
                                         written->second.state_writes == 0) {
    outcome_recorded(written->second);
  }
  dispatch();
}

void QueueManager::outcome_recorded(Entry& entry) {
  if (!entry.outcome_unrecorded) return;
  entry.outcome_unrecorded = false;
  --outcomes_unrecorded_;
  // A slot is free: a delivery waiting for one may start (not while
  // dispatching: dispatch() itself is what brought us here then).
  if (!dispatching_) dispatch();
}

// ---------------------------------------------------------------- recording state

void QueueManager::persist(const std::string& id, std::function<void(std::error_code)> then) {
  auto found = messages_.find(id);
  if (found == messages_.end()) return;
  ++found->second.state_writes;
  spool_.record_state(id, found->second.state,
                      [this, alive = alive(), id, then = std::move(then)](std::error_code error) {
                        if (alive.expired()) return;
                        auto found = messages_.find(id);
                        if (found == messages_.end()) return;
                        --found->second.state_writes;
                        // Durable, or failed with a retry set (retry_later):
                        // either way the slot is not held for the retry.
                        if (found->second.state_writes == 0) outcome_recorded(found->second);
                        found = messages_.find(id);
                        if (found == messages_.end()) return;
                        if (then) then(error);
                        // Whatever this write was for, durable state may let
                        // the message move on (a notification, its removal).
                        if (!error) advance(id);
                      });
}

void QueueManager::persist_and_advance(const std::string& id) {
  persist(id, [this, id](std::error_code error) {
    auto found = messages_.find(id);
    if (found == messages_.end()) return;
    if (error) {
      spdlog::error("queue: {}: cannot record delivery state: {}", id, error.message());
      retry_later(id, found->second, /*persist_first=*/true);
      return;
    }
    found->second.state_dirty = false;
  });
}

void QueueManager::retry_later(const std::string& id, Entry& entry, bool persist_first) {
  if (stopped_) return;
  entry.state_dirty = persist_first;
  entry.retry_timer = loop_.run_after(
      std::chrono::duration_cast<std::chrono::milliseconds>(settings_.storage_retry_delay),
      [this, alive = alive(), id, persist_first] {
        if (alive.expired()) return;
        auto found = messages_.find(id);
        if (found == messages_.end()) return;
        found->second.retry_timer.reset();
        if (persist_first) {
          persist_and_advance(id);
        } else {
          advance(id);
        }
      });
}

// ---------------------------------------------------------------- notifications and removal

void QueueManager::advance(const std::string& id) {
  auto found = messages_.find(id);
  if (found == messages_.end()) return;
  Entry& entry = found->second;
  // Act only on durable state: a write in flight advances when it lands.
  if (entry.removing || entry.reporting || entry.state_dirty || entry.state_writes > 0 ||
      stopped_) {
    return;
  }

  const bool may = may_notify(entry.message);
  const Envelope& envelope = entry.message.envelope;
  // Final outcomes still to report: failures (unless NOTIFY leaves FAILURE
  // out) and, for NOTIFY=SUCCESS, deliveries into a mailstore of ours or to
  // a next hop that took no DSN parameters (RFC 3461 §5.2.3).
  std::vector<std::size_t> final_reports;
  std::vector<std::size_t> unwanted_failures;
  for (std::size_t i = 0; i < entry.state.recipients.size(); ++i) {
    const RecipientState& recipient = entry.state.recipients[i];
    if ((recipient.status == RecipientStatus::failed ||
         recipient.status == RecipientStatus::expired) &&
        !recipient.failure_reported) {
      if (may && envelope.wants_notification(i, notify::failure)) {
        final_reports.push_back(i);
      } else {
        unwanted_failures.push_back(i);
      }
    } else if (may && success_report_owed(envelope, i, recipient)) {
      final_reports.push_back(i);
    }
  }
  if (!unwanted_failures.empty()) {
    // Null sender, a bounce (RFC 5321 §4.5.5) or NOTIFY without FAILURE:
    // nobody to tell. The flag rides along with the next state write, or
    // the message goes now.
    for (std::size_t index : unwanted_failures) {
      entry.state.recipients[index].failure_reported = true;
    }
    spdlog::info("queue: {}: failed, but no notification is sent for a {}", id,
                 !may ? (entry.message.bounce ? "notification" : "null sender")
                      : "recipient whose NOTIFY leaves out FAILURE");
  }
  if (!final_reports.empty()) {
    notify(id, entry, final_reports, /*delay=*/false);
    return;
  }

  if (!entry.state.delay_warning_sent && may &&
      scheduler_.delay_warning_due(entry.message.arrival, clock_())) {
    std::vector<std::size_t> delayed;
    for (std::size_t i = 0; i < entry.state.recipients.size(); ++i) {
      const RecipientState& recipient = entry.state.recipients[i];
      if (recipient.status == RecipientStatus::pending && recipient.attempts > 0 &&
          envelope.wants_notification(i, notify::delay)) {
        delayed.push_back(i);
      }
    }
    if (!delayed.empty()) {
      notify(id, entry, delayed, /*delay=*/true);
      return;
    }
  }

  if (!all_final(entry.state)) return;
  entry.removing = true;
  scheduler_.unschedule(id);
  spool_.remove(id, [this, alive = alive(), id](std::error_code error) {
    if (alive.expired()) return;
    auto found = messages_.find(id);
    if (found == messages_.end()) return;
    if (error) {
      spdlog::error("queue: {}: cannot remove the finished message: {}", id, error.message());
      found->second.removing = false;
      retry_later(id, found->second, /*persist_first=*/false);
      outcome_recorded(found->second);
      return;
    }
    spdlog::info("queue: {} removed: finished", id);
    service_log(Service::qmgr).info("{}: removed", id);
    drop_data(found->second);
    const bool held_slot = found->second.outcome_unrecorded;
    if (held_slot) --outcomes_unrecorded_;
    messages_.erase(found);
    if (held_slot && !dispatching_) dispatch();
  });
}

void QueueManager::notify(const std::string& id, Entry& entry,
                          const std::vector<std::size_t>& indices, bool delay) {
  const TimePoint now = clock_();
  std::shared_ptr<const std::string> original = entry.message.data;
  if (!original) {
    Spool::Loaded loaded = spool_.load_data(id);
    if (loaded.error) {
      spdlog::warn("queue: {}: original unreadable, notification without its headers: {}", id,
                   loaded.error.message());
    }
    original = loaded.data;
  }

  const Envelope& envelope = entry.message.envelope;
  DsnReport report;
  report.reporting_host = settings_.reporting_host;
  QueuedMessage notification;
  notification.id = spool_.new_message_id();
  report.message_id = notification.id + "@" + settings_.reporting_host;
  report.created = now;
  report.original_sender = envelope.sender;
  report.original_envelope_id = envelope.envelope_id;
  report.arrival = entry.message.arrival;
  if (original) report.original_message = *original;
  // RET=FULL (RFC 3461 §4.3), up to a size; larger messages come back as
  // their headers, as Postfix's bounce_size_limit does.
  report.full_message = envelope.dsn_return == DsnReturn::full && original &&
                        original->size() <= settings_.returned_message_limit;
  for (std::size_t index : indices) {
    const RecipientState& recipient = entry.state.recipients[index];
    DsnRecipient line;
    line.address = envelope.recipients[index];
    const RecipientDsn request = envelope.dsn_of(index);
    line.original_type = request.original_type;
    line.original_address = request.original_address;
    line.action =
        delay ? DsnAction::delayed
        : recipient.status == RecipientStatus::delivered
            ? (recipient.handoff == Handoff::mailstore ? DsnAction::delivered : DsnAction::relayed)
            : DsnAction::failed;
    line.status = dsn_status(recipient.status, recipient.last_reply);
    line.diagnostic = recipient.last_reply;
    if (recipient.attempts > 0) line.last_attempt = recipient.last_attempt;
    if (delay) line.will_retry_until = scheduler_.expiry(entry.message.arrival);
    report.recipients.push_back(std::move(line));
  }

  // Sent with the null reverse-path, so it can never bounce in turn.
  notification.envelope.recipients = {envelope.sender};
  notification.envelope.smtputf8 = envelope.smtputf8;
  notification.arrival = now;
  notification.bounce = true;
  auto data = std::make_shared<const std::string>(build_delivery_status_notification(report));
  notification.size = data->size();
  notification.data = std::move(data);

  entry.reporting = true;
  store_new(std::move(notification), [this, alive = alive(), id, indices,
                                      delay](EnqueueResult result) {
    if (alive.expired()) return;
    auto found = messages_.find(id);
    if (found == messages_.end()) return;
    Entry& entry = found->second;
    entry.reporting = false;
    if (!result) {
      spdlog::error("queue: {}: cannot enqueue the notification: {}", id, result.error.message());
      retry_later(id, entry, /*persist_first=*/false);
      return;
    }
    const char* kind = "delay";
    if (delay) {
      entry.state.delay_warning_sent = true;
    } else {
      kind = "success";
      for (std::size_t index : indices) {
        RecipientState& recipient = entry.state.recipients[index];
        if (recipient.status == RecipientStatus::delivered) {
          recipient.success_reported = true;
        } else {
          recipient.failure_reported = true;
          kind = "failure";
        }
      }
    }
    spdlog::info("queue: {}: {} notification {} to <{}>", id, kind, result.id,
                 entry.message.envelope.sender);
    // Postfix's bounce daemon's words for the three kinds.
    const std::string_view words = delay                                 ? "delay"
                                   : std::string_view(kind) == "failure" ? "non-delivery"
                                                                         : "delivery status";
    service_log(Service::bounce).info("{}: sender {} notification: {}", id, words, result.id);
    persist_and_advance(id);
  });
}

}  // namespace stokend::queue
