// What the queue holds: a message's envelope and data, and the delivery state
// of each of its recipients.
//
// Contract: plain values. Recipient states are kept in the order of
// Envelope::recipients (same index, same count); so are the recipients' DSN
// requests, except that a message without any has none at all. Times are wall-clock times,
// because they are written to disk and must mean the same after a restart.
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

namespace stokend::queue {

using TimePoint = std::chrono::system_clock::time_point;

// RFC 3461 §4.1 NOTIFY, as bits. No bit set: the client gave no NOTIFY, and
// the default applies (failures and delays are reported, as Postfix does).
namespace notify {
inline constexpr std::uint8_t never = 1;
inline constexpr std::uint8_t success = 2;
inline constexpr std::uint8_t failure = 4;
inline constexpr std::uint8_t delay = 8;
inline constexpr std::uint8_t all = never | success | failure | delay;
}  // namespace notify

// RFC 3461 limits on the parameters' values as written (xtext-encoded).
inline constexpr std::size_t max_envid_length = 100;  // §4.4
inline constexpr std::size_t max_orcpt_length = 500;  // §4.2

// What a recipient asked of the DSN extension at RCPT (RFC 3461 §4.1, §4.2).
struct RecipientDsn {
  std::uint8_t notify = 0;       // notify:: bits, 0 when not given
  std::string original_type;     // ORCPT address type ("rfc822", "utf-8"); empty: none
  std::string original_address;  // ORCPT address, xtext-decoded

  bool operator==(const RecipientDsn&) const = default;
};

// RFC 3461 §4.3 RET: what a failure report carries of the message.
enum class DsnReturn : std::uint8_t {
  unspecified = 0,  // our default: the headers
  full = 1,         // the whole message
  headers = 2,      // the header section only
};

struct Envelope {
  // The reverse-path mailbox ("local@domain"); empty for the null path "<>",
  // which is never sent a bounce (RFC 5321 §4.5.5).
  std::string sender;
  std::vector<std::string> recipients;  // forward-path mailboxes, at least one
  std::string envelope_id;              // RFC 3461 ENVID, empty when none
  bool smtputf8 = false;                // the client asked for SMTPUTF8 (RFC 6531)
  // Submitted by a client that authenticated as a user allowed to use this
  // sender (the submission role's sender check). Only such mail may carry
  // the sender's tokens: mail that came in by MX with a local sender (a
  // forgery, or one an alias forwards) never does.
  bool authenticated_sender = false;
  DsnReturn dsn_return = DsnReturn::unspecified;  // RFC 3461 RET
  // Empty when no recipient gave NOTIFY or ORCPT; else one per recipient.
  std::vector<RecipientDsn> recipient_dsn;
  // Stored held (a milter quarantined it): not attempted until an
  // administrator releases it. Read by enqueue() only: what lasts is the
  // message state's held flag, recorded before the enqueue is reported.
  bool hold = false;

  // The DSN request of recipient `index` (the defaults when none was given).
  RecipientDsn dsn_of(std::size_t index) const {
    return index < recipient_dsn.size() ? recipient_dsn[index] : RecipientDsn{};
  }
  // Whether recipient `index` wants to hear of `event` (a notify:: bit):
  // NOTIFY=NEVER never; no NOTIFY: failures and delays (RFC 3461 §4.1
  // leaves the default to the MTA).
  bool wants_notification(std::size_t index, std::uint8_t event) const {
    const std::uint8_t asked = dsn_of(index).notify;
    if (asked == 0) return event == notify::failure || event == notify::delay;
    return (asked & event) != 0;
  }
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

// Where a delivered recipient's message went, which decides its success
// report (RFC 3461 §5.2.3): "delivered" into a mailstore of ours, "relayed"
// to a next hop that does not speak DSN, none when the next hop took the DSN
// parameters over (it reports from then on).
enum class Handoff : std::uint8_t {
  relayed = 0,           // to a next hop without DSN (also: unknown)
  mailstore = 1,         // into a local mailstore (Maildir, LMTP)
  relayed_with_dsn = 2,  // to a next hop that offered DSN and got the parameters
};

struct RecipientState {
  RecipientStatus status = RecipientStatus::pending;
  std::uint32_t attempts = 0;  // delivery attempts made so far
  TimePoint next_attempt{};    // meaningful while pending
  TimePoint last_attempt{};    // epoch when never attempted
  std::string last_reply;      // the last reply, e.g. "550 5.1.1 <a@b>: no such user"
  // A failure (failed or expired) has been reported: a bounce was enqueued,
  // or none was due (null sender, or the message is itself a bounce).
  bool failure_reported = false;
  Handoff handoff = Handoff::relayed;  // meaningful once delivered
  // A success report (NOTIFY=SUCCESS) has been enqueued for this recipient.
  bool success_reported = false;

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
