// The queue: accepts messages into the spool, delivers them through a
// DeliveryAgent, retries, reports failures to senders, and forgets finished
// messages. The daemon's one entry point into queue/.
//
// Life of a message. enqueue() stores it (group commit, spool.h) and reports
// success only once it is durable: that is when the SMTP session may send
// 250. It is scheduled at once and, concurrency permitting, handed to the
// agent right away. Each recipient's result is recorded durably as soon as
// it arrives: delivered and permanently failed recipients are final; a
// temporary failure is retried on the RetryPolicy's schedule until the
// lifetime ends, after which the recipient has expired. Permanent failures
// and expiries produce one bounce (dsn.h) to the envelope sender, enqueued
// like any message, before the recipients are marked reported; an optional
// delay warning goes out once when a message is still pending after
// delay_warning_after. When every recipient is final and reported, the
// message is removed from the spool.
//
// The DSN requests (RFC 3461) decide who hears what: NOTIFY=NEVER nothing;
// a NOTIFY without FAILURE no bounce, without DELAY no delay warning (no
// NOTIFY: both); NOTIFY=SUCCESS a success report once the recipient is
// delivered ("delivered" into a mailstore, "relayed" to a next hop without
// DSN, none when the next hop took the parameters and reports itself,
// §5.2.3). RET=FULL returns the whole message in a bounce, up to
// returned_message_limit; otherwise, and in every other report, the headers.
// Reports carry ENVID as Original-Envelope-Id and ORCPT as
// Original-Recipient.
//
// Ordering that makes crashes safe: state is recorded before anything acts
// on it (a bounce is enqueued only after the failure is durable; a message is
// removed only after its final state is durable; a failure is marked
// reported only after its bounce is durable). After a crash, start() resumes
// from whatever was durable, so at worst a delivery or a notification is
// repeated, never lost.
//
// Duplicates after a crash. A delivery's outcome (the removal record of a
// delivered message, or its state record) is handed to the spool the moment
// the agent reports it and joins the group commit being gathered (spool.h),
// so what a crash repeats is the deliveries that finished within about one
// commit before it. A delivery keeps its slot among
// max_concurrent_deliveries until its outcome is durable, not only until
// the agent answers: deliveries running plus outcomes not yet on disk never
// exceed that limit, which bounds what one crash can deliver twice even
// when the disk is slow (the queue then starts new deliveries only as fast
// as their outcomes are recorded).
//
// Contract: every function is called on the loop thread, and every callback
// runs there. enqueue() and the admin changes (hold, release, remove) report
// through their callback once the change is durable; the callback may run
// before the call returns when there is nothing to write (unknown id).
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <system_error>
#include <unordered_map>
#include <vector>

#include "queue/delivery_agent.h"
#include "queue/dsn.h"
#include "queue/event_loop.h"
#include "queue/message_intake.h"
#include "queue/queue_defaults.h"
#include "queue/queued_message.h"
#include "queue/scheduler.h"
#include "queue/spool.h"

namespace stokend::queue {

struct QueueSettings {
  RetryPolicy retry;
  std::size_t max_concurrent_deliveries = defaults::max_concurrent_deliveries;
  std::size_t waiting_data_budget = defaults::waiting_data_budget;
  std::string reporting_host;  // our host name, for bounces ("localhost" when empty)
  std::chrono::seconds storage_retry_delay = defaults::storage_retry_delay;
  // RET=FULL returns messages up to this size whole, larger ones as headers.
  std::size_t returned_message_limit = defaults::returned_message_limit;
};

enum class AdminOutcome { done, no_such_message, storage_failed };

struct MessageSummary {
  std::string id;
  std::string sender;  // empty: null sender
  TimePoint arrival{};
  std::uint64_t size = 0;
  bool chat = false;
  bool bounce = false;
  bool held = false;
  bool in_flight = false;
  std::size_t recipients = 0;
  std::size_t pending = 0;
  std::optional<TimePoint> next_attempt;  // earliest, among pending recipients
};

struct MessageDetails {
  MessageSummary summary;
  std::vector<std::string> recipients;
  MessageState state;   // recipients in the same order
  std::string headers;  // the message's header section (empty if unreadable)
};

class QueueManager : public MessageIntake {
 public:
  using AdminDone = std::function<void(AdminOutcome)>;

  // clock and random default to the system clock and a seeded generator.
  QueueManager(EventLoop& loop, Spool& spool, DeliveryAgent& agent, QueueSettings settings,
               Clock clock = {}, RandomSource random = {});
  ~QueueManager() override;
  QueueManager(const QueueManager&) = delete;
  QueueManager& operator=(const QueueManager&) = delete;

  // Takes over what Spool::open() recovered: schedules pending recipients,
  // sends notifications still owed, removes finished messages, and starts
  // delivering.
  void start(std::vector<RecoveredMessage> recovered);

  // Accepts a message. data: as received, CRLF line endings (with our
  // Received header). Chat mail (message::is_chat_message) goes first.
  void enqueue(Envelope envelope, std::string data, EnqueueDone done) override;

  // Administration (stokenctl queue ...).
  std::vector<MessageSummary> list() const;
  std::optional<MessageDetails> show(const std::string& id) const;
  // Makes pending recipients due now; an empty id means every message. Held
  // messages stay held. Returns how many messages were scheduled.
  std::size_t flush(const std::string& id = {});
  void hold(const std::string& id, AdminDone done);
  void release(const std::string& id, AdminDone done);
  // Deletes a message without notifying anyone.
  void remove(const std::string& id, AdminDone done);
  // Like Postfix's postsuper -r: releases the message if held and makes its
  // pending recipients due now, recorded durably, so the next attempt (with
  // the routes then in force) starts at once. Attempt counts and the arrival
  // time stay: the retry schedule and the queue lifetime go on from them.
  void requeue(const std::string& id, AdminDone done);

  // No new delivery starts; results of running ones are still recorded.
  void stop();

  struct Statistics {
    std::size_t messages = 0;
    std::size_t in_flight = 0;
    std::size_t outcomes_unrecorded = 0;  // finished deliveries whose outcome is not yet durable
    std::size_t scheduled = 0;
    std::size_t held = 0;
    std::size_t resident_data_bytes = 0;      // message data held in memory
    std::uint64_t bytes = 0;                  // data of every queued message
    std::optional<TimePoint> oldest_arrival;  // of the queued messages, if any
  };
  Statistics statistics() const;

 private:
  struct Entry {
    QueuedMessage message;
    MessageState state;
    bool in_flight = false;
    bool removing = false;
    bool reporting = false;           // a notification is being enqueued
    bool state_dirty = false;         // the last state write failed; a retry is set
    bool outcome_unrecorded = false;  // holds a delivery slot until its outcome is durable
    unsigned state_writes = 0;
    std::unique_ptr<EventLoop::Timer> retry_timer;
  };

  void store_new(QueuedMessage message, EnqueueDone done);
  void schedule(const std::string& id, Entry& entry);
  void dispatch();
  void arm_wakeup();
  // Delivery slots taken: deliveries running plus outcomes not yet durable.
  std::size_t slots_taken() const { return in_flight_ + outcomes_unrecorded_; }
  // The outcome of entry's last delivery is durable (or its write failed
  // and a retry is set): its slot is free again.
  void outcome_recorded(Entry& entry);
  void start_delivery(const std::string& id, Entry& entry, TimePoint now);
  // started: when the attempt began (the to= log line's delays).
  void on_delivered(const std::string& id, const std::vector<std::size_t>& indices,
                    std::vector<RecipientResult> results, TimePoint started);
  void persist(const std::string& id, std::function<void(std::error_code)> then);
  void persist_and_advance(const std::string& id);
  void advance(const std::string& id);
  void retry_later(const std::string& id, Entry& entry, bool persist_first);
  // One notification about recipients `indices`: their delay (delay), or
  // their final outcomes (failed, delivered or relayed).
  void notify(const std::string& id, Entry& entry, const std::vector<std::size_t>& indices,
              bool delay);
  MessageSummary summarise(const Entry& entry) const;
  // Message data in memory, counted against settings_.waiting_data_budget.
  // A new message stored held (Envelope::hold), reported once the held
  // state is durable.
  void store_held(const std::string& id, Entry& entry, std::shared_ptr<QueuedMessage> message,
                  EnqueueDone done);
  void keep_data(Entry& entry, std::shared_ptr<const std::string> data);
  void drop_data(Entry& entry);
  std::weak_ptr<char> alive() const { return lifetime_; }

  EventLoop& loop_;
  Spool& spool_;
  DeliveryAgent& agent_;
  QueueSettings settings_;
  Clock clock_;
  Scheduler scheduler_;
  std::unordered_map<std::string, Entry> messages_;
  std::size_t in_flight_ = 0;
  std::size_t outcomes_unrecorded_ = 0;  // entries with outcome_unrecorded set
  std::size_t resident_bytes_ = 0;       // data held by entries (keep_data / drop_data)
  bool started_ = false;
  bool stopped_ = false;
  bool dispatching_ = false;
  bool dispatch_again_ = false;
  std::unique_ptr<EventLoop::Timer> wakeup_;
  std::optional<TimePoint> wakeup_at_;
  std::shared_ptr<char> lifetime_ = std::make_shared<char>();
};

}  // namespace stokend::queue
