// Delivery status notifications (bounces and delay warnings), RFC 3464.
//
// A notification is a multipart/report (RFC 6522) with
// report-type=delivery-status and three parts: a human-readable
// explanation, a message/delivery-status part (RFC 3464 §2: per-message
// fields Reporting-MTA, Original-Envelope-Id, Arrival-Date; per recipient
// Final-Recipient, Action, Status, Diagnostic-Code, Last-Attempt-Date,
// Will-Retry-Until) and the original message's header section as
// text/rfc822-headers. When an address or the original headers are UTF-8
// (SMTPUTF8 mail), the RFC 6533 types message/global-delivery-status and
// message/global-headers are used instead.
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

enum class DsnAction { failed, delayed };

struct DsnRecipient {
  std::string address;
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
