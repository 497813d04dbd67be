// What the queue holds: a message's envelope and data, and the delivery state
// of each of its recipients.
//
// Contract: plain values. Recipient states are kept in the order of
// Envelope::recipients (same index, same count). Times are wall-clock times,
// because they are written to disk and must mean the same after a restart.
#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

namespace stokend::queue {

using TimePoint = std::chrono::system_clock::time_point;

struct Envelope {
  // The reverse-path mailbox ("local@domain"); empty for the null path "<>",
  // which is never sent a bounce (RFC 5321 §4.5.5).
  std::string sender;
  std::vector<std::string> recipients;  // forward-path mailboxes, at least one
  std::string envelope_id;              // RFC 3461 ENVID, empty when none
  bool smtputf8 = false;                // the client asked for SMTPUTF8 (RFC 6531)
};

struct QueuedMessage {
  std::string id;  // spool-assigned, unique, [0-9a-f]
  Envelope envelope;
  TimePoint arrival{};
  bool chat = false;       // chat mail (message::is_chat_message): the priority lane
  bool bounce = false;     // a delivery status notification stokend generated
  std::uint64_t size = 0;  // bytes of data
  // The message as received, CRLF line endings. Null when not in memory: the
  // queue loads it from the spool for each retry and drops it afterwards.
  std::shared_ptr<const std::string> data;
};

enum class RecipientStatus : std::uint8_t {
  pending = 0,    // to be attempted at next_attempt
  delivered = 1,  // final: accepted by the next hop or the mailstore
  failed = 2,     // final: permanent failure, last_reply holds the reason
  expired = 3,    // final: still failing temporarily when the lifetime ran out
};

inline bool is_final(RecipientStatus status) { return status != RecipientStatus::pending; }

struct RecipientState {
  RecipientStatus status = RecipientStatus::pending;
  std::uint32_t attempts = 0;  // delivery attempts made so far
  TimePoint next_attempt{};    // meaningful while pending
  TimePoint last_attempt{};    // epoch when never attempted
  std::string last_reply;      // the last reply, e.g. "550 5.1.1 <a@b>: no such user"
  // A failure (failed or expired) has been reported: a bounce was enqueued,
  // or none was due (null sender, or the message is itself a bounce).
  bool failure_reported = false;

  bool operator==(const RecipientState&) const = default;
};

struct MessageState {
  bool held = false;                // an administrator put it on hold: not attempted
  bool delay_warning_sent = false;  // the one "delayed" notification went out
  std::vector<RecipientState> recipients;

  bool operator==(const MessageState&) const = default;
};

// The state of a message no attempt has touched: every recipient pending,
// due at arrival.
inline MessageState initial_state(const QueuedMessage& message) {
  MessageState state;
  state.recipients.resize(message.envelope.recipients.size());
  for (RecipientState& recipient : state.recipients) recipient.next_attempt = message.arrival;
  return state;
}

}  // namespace stokend::queue
