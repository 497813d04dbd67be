// Delivery status notifications (bounces, delay warnings and success
// reports), RFC 3464.
//
// A notification is a multipart/report (RFC 6522) with
// report-type=delivery-status and three parts: a human-readable
// explanation, a message/delivery-status part (RFC 3464 §2: per-message
// fields Reporting-MTA, Original-Envelope-Id, Arrival-Date; per recipient
// Original-Recipient (the ORCPT, RFC 3461 §6.3), Final-Recipient, Action
// (failed, delayed, delivered, relayed), Status, Diagnostic-Code,
// Last-Attempt-Date, Will-Retry-Until) and the original message: its header
// section as text/rfc822-headers, or with full_message (RET=FULL, RFC 3461
// §4.3) the whole message as message/rfc822. When an address or the original
// is UTF-8 (SMTPUTF8 mail), the RFC 6533 types message/global-delivery-status,
// message/global-headers and message/global are used instead.
//
// It comes From MAILER-DAEMON@<host> and is sent with the null reverse-path,
// so that it can never cause another notification (RFC 5321 §4.5.5,
// RFC 3464 §2.1). Nothing is ever sent to a null sender, and a notification
// is never sent about a notification: may_notify() decides.
//
// Contract: pure functions, never throw on any input. Remote replies are
// untrusted text: they are reduced to printable ASCII and folded before they
// go into header fields.
#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "queue/queued_message.h"

namespace stokend::queue {

enum class DsnAction { failed, delayed, delivered, relayed };

struct DsnRecipient {
  std::string address;
  std::string original_type;     // ORCPT address type; empty: no Original-Recipient
  std::string original_address;  // ORCPT address, decoded
  DsnAction action = DsnAction::failed;
  std::string status;      // RFC 3463 code, e.g. "5.1.1" (see dsn_status())
  std::string diagnostic;  // the last reply, e.g. "550 5.1.1 <a@b>: no such user"; may be empty
  std::optional<TimePoint> last_attempt;
  std::optional<TimePoint> will_retry_until;  // for "delayed"
};

struct DsnReport {
  std::string reporting_host;         // our host name: Reporting-MTA and MAILER-DAEMON@host
  std::string message_id;             // the notification's Message-ID, without angle brackets
  TimePoint created{};                // its Date
  std::string original_sender;        // who gets the notification
  std::string original_envelope_id;   // RFC 3461 ENVID, empty when none
  TimePoint arrival{};                // Arrival-Date of the original
  std::string_view original_message;  // its header section is quoted
  bool full_message = false;          // RET=FULL: the whole original instead
  std::vector<DsnRecipient> recipients;
};

// Whether a notification may be sent about this message at all.
bool may_notify(const QueuedMessage& message);

// The RFC 3463 status for a recipient: the enhanced code in the reply when
// it has one of the right class, else a default. Permanent failures get
// class 5 (default 5.0.0); an expired message gets the last temporary code
// or 4.4.7, "delivery time expired" (RFC 3463 §3.5), as other MTAs report
// it; a delay gets class 4 (default 4.0.0).
std::string dsn_status(RecipientStatus status, std::string_view reply);

// The complete notification message, CRLF line endings.
std::string build_delivery_status_notification(const DsnReport& report);

}  // namespace stokend::queue
