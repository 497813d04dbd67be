// Building RFC 3464 delivery status notifications: see dsn.h.
#include "queue/dsn.h"

#include <cctype>

#include "message/received.h"
#include "message/xtext.h"

namespace stokend::queue {
namespace {

constexpr std::size_t fold_width = 76;
constexpr std::size_t max_diagnostic_length = 900;

bool is_ascii(std::string_view text) {
  for (unsigned char c : text) {
    if (c >= 0x80) return false;
  }
  return true;
}

bool is_digit(char c) { return c >= '0' && c <= '9'; }

// Printable ASCII only, every run of white space or control characters as
// one space, trimmed and shortened: safe inside a header field.
std::string sanitise(std::string_view text, std::size_t limit) {
  std::string clean;
  bool pending_space = false;
  for (unsigned char c : text) {
    if (c <= ' ' || c == 0x7f) {
      pending_space = !clean.empty();
      continue;
    }
    if (pending_space) clean.push_back(' ');
    pending_space = false;
    clean.push_back(c >= 0x80 ? '?' : static_cast<char>(c));
    if (clean.size() >= limit) break;
  }
  return clean;
}

// An address inside a header field: no line breaks or control characters
// (UTF-8 stays, for SMTPUTF8 addresses).
std::string sanitise_address(std::string_view address) {
  std::string clean;
  for (unsigned char c : address) {
    if (c < ' ' || c == 0x7f) continue;
    clean.push_back(static_cast<char>(c));
  }
  return clean;
}

// Folds "Name: value" at spaces (RFC 5322 §2.2.3) so lines stay short.
std::string field(std::string_view name, std::string_view value) {
  std::string result(name);
  result += ":";
  std::size_t line_length = result.size();
  std::size_t position = 0;
  while (position < value.size()) {
    std::size_t end = value.find(' ', position);
    if (end == std::string_view::npos) end = value.size();
    const std::string_view word = value.substr(position, end - position);
    if (!word.empty()) {
      if (line_length + 1 + word.size() > fold_width && line_length > name.size() + 1) {
        result += "\r\n";
        line_length = 0;
      }
      result += " ";
      result += word;
      line_length += 1 + word.size();
    }
    position = end + 1;
  }
  result += "\r\n";
  return result;
}

// An enhanced status code "c.s.d" (RFC 3463 §2) right after the reply code.
std::optional<std::string> enhanced_code(std::string_view reply) {
  if (reply.size() < 4 || !is_digit(reply[0]) || !is_digit(reply[1]) || !is_digit(reply[2]) ||
      (reply[3] != ' ' && reply[3] != '-')) {
    return std::nullopt;
  }
  std::size_t position = 4;
  while (position < reply.size() && reply[position] == ' ') ++position;
  const std::size_t start = position;
  if (position >= reply.size() ||
      (reply[position] != '2' && reply[position] != '4' && reply[position] != '5')) {
    return std::nullopt;
  }
  ++position;
  for (int group = 0; group < 2; ++group) {
    if (position >= reply.size() || reply[position] != '.') return std::nullopt;
    ++position;
    const std::size_t digits_start = position;
    while (position < reply.size() && is_digit(reply[position])) ++position;
    const std::size_t digits = position - digits_start;
    if (digits < 1 || digits > 3) return std::nullopt;
  }
  if (position < reply.size() && reply[position] != ' ' && reply[position] != '\r' &&
      reply[position] != '\n') {
    return std::nullopt;
  }
  return std::string(reply.substr(start, position - start));
}

// The original's header section, up to the empty line that ends it.
std::string_view header_section(std::string_view message) {
  if (message.starts_with("\r\n")) return {};
  const std::size_t end = message.find("\r\n\r\n");
  return end == std::string_view::npos ? message : message.substr(0, end + 2);
}

std::string diagnostic_code(std::string_view reply) {
  const std::string clean = sanitise(reply, max_diagnostic_length);
  if (clean.empty()) return {};
  // RFC 3464 §2.3.6: "smtp" when the text is an SMTP reply; otherwise our
  // own type, as MTAs do for local errors (connection refused, no MX).
  const bool smtp_reply = clean.size() >= 3 && is_digit(clean[0]) && is_digit(clean[1]) &&
                          is_digit(clean[2]) && (clean.size() == 3 || clean[3] == ' ');
  return (smtp_reply ? "smtp; " : "X-Stokend; ") + clean;
}

const char* action_name(DsnAction action) {
  switch (action) {
    case DsnAction::delayed:
      return "delayed";
    case DsnAction::delivered:
      return "delivered";
    case DsnAction::relayed:
      return "relayed";
    case DsnAction::failed:
      break;
  }
  return "failed";
}

}  // namespace

bool may_notify(const QueuedMessage& message) {
  return !message.envelope.sender.empty() && !message.bounce;
}

std::string dsn_status(RecipientStatus status, std::string_view reply) {
  const std::optional<std::string> code = enhanced_code(reply);
  switch (status) {
    case RecipientStatus::failed:
      if (code && code->front() == '5') return *code;
      return "5.0.0";
    case RecipientStatus::expired:
      if (code && code->front() == '4') return *code;
      return "4.4.7";
    case RecipientStatus::pending:
      if (code && code->front() == '4') return *code;
      return "4.0.0";
    case RecipientStatus::delivered:
      if (code && code->front() == '2') return *code;
      return "2.0.0";
  }
  return "5.0.0";
}

std::string build_delivery_status_notification(const DsnReport& report) {
  const std::string host = sanitise(report.reporting_host, 255);
  enum class Kind { failure, delay, success };
  Kind kind = report.recipients.empty() ? Kind::failure : Kind::delay;
  bool utf8_addresses = !is_ascii(report.original_sender);
  for (const DsnRecipient& recipient : report.recipients) {
    if (recipient.action == DsnAction::failed) {
      kind = Kind::failure;
    } else if (recipient.action != DsnAction::delayed && kind == Kind::delay) {
      kind = Kind::success;
    }
    if (!is_ascii(recipient.address) || !is_ascii(recipient.original_address)) {
      utf8_addresses = true;
    }
  }
  // RFC 3461 §4.3: RET=FULL asks for the whole message in a failure report;
  // success and delay reports carry the headers either way.
  const bool full = report.full_message && kind == Kind::failure;
  const std::string_view returned =
      full ? report.original_message : header_section(report.original_message);
  const bool utf8_returned = !is_ascii(header_section(report.original_message));

  // Human-readable part.
  std::string explanation = "This is the mail system at host " + host + ".\r\n\r\n";
  switch (kind) {
    case Kind::delay:
      explanation +=
          "Your message could not be delivered yet to the recipients below. The mail\r\n"
          "system will keep trying; you do not need to send it again.\r\n";
      break;
    case Kind::success:
      explanation +=
          "Your message was delivered to the destinations below, as you asked to be\r\n"
          "told. Where it was delivered to a mailbox, no further notifications follow;\r\n"
          "where it was relayed, other systems may still report errors.\r\n";
      break;
    case Kind::failure:
      explanation +=
          full ? "Your message could not be delivered to one or more recipients. It is\r\n"
                 "attached below. The reasons follow.\r\n"
               : "Your message could not be delivered to one or more recipients. It is\r\n"
                 "attached below (headers only). The reasons follow.\r\n";
      break;
  }
  explanation += "\r\n";
  for (const DsnRecipient& recipient : report.recipients) {
    std::string line = "<" + sanitise_address(recipient.address) + ">: ";
    const std::string reason = sanitise(recipient.diagnostic, max_diagnostic_length);
    if (!reason.empty()) {
      line += reason;
    } else {
      switch (recipient.action) {
        case DsnAction::delayed:
          line += "delivery temporarily failed";
          break;
        case DsnAction::delivered:
          line += "delivered to the mailbox";
          break;
        case DsnAction::relayed:
          line += "relayed to a system that does not report delivery";
          break;
        case DsnAction::failed:
          line += "delivery failed";
          break;
      }
    }
    if (recipient.action == DsnAction::relayed && !reason.empty()) {
      line += " (relayed to a system that does not report delivery)";
    }
    if (recipient.action == DsnAction::delayed && recipient.will_retry_until) {
      line += " (will retry until " + message::rfc5322_date(*recipient.will_retry_until) + ")";
    }
    explanation += "    " + line + "\r\n";
  }

  // Machine-readable part (RFC 3464 §2.2, §2.3).
  std::string status = field("Reporting-MTA", "dns; " + host);
  if (!report.original_envelope_id.empty()) {
    status += field("Original-Envelope-Id", message::encode_xtext(report.original_envelope_id));
  }
  status += field("Arrival-Date", message::rfc5322_date(report.arrival));
  for (const DsnRecipient& recipient : report.recipients) {
    const std::string address = sanitise_address(recipient.address);
    status += "\r\n";
    // RFC 3461 §6.3: the ORCPT as the client gave it, decoded.
    if (!recipient.original_type.empty()) {
      status += field("Original-Recipient", sanitise(recipient.original_type, 64) + "; " +
                                                sanitise_address(recipient.original_address));
    }
    // RFC 6533 §3: the "utf-8" address type for internationalised addresses.
    status += field("Final-Recipient", (is_ascii(address) ? "rfc822; " : "utf-8; ") + address);
    status += field("Action", action_name(recipient.action));
    status += field("Status", sanitise(recipient.status, 16));
    if (const std::string code = diagnostic_code(recipient.diagnostic); !code.empty()) {
      status += field("Diagnostic-Code", code);
    }
    if (recipient.last_attempt) {
      status += field("Last-Attempt-Date", message::rfc5322_date(*recipient.last_attempt));
    }
    if (recipient.will_retry_until) {
      status += field("Will-Retry-Until", message::rfc5322_date(*recipient.will_retry_until));
    }
  }

  // A boundary that occurs in none of the parts (RFC 2046 §5.1.1).
  std::string boundary = "=_stokend_" + sanitise(report.message_id, 64) + "_=";
  for (int attempt = 1; explanation.find(boundary) != std::string::npos ||
                        status.find(boundary) != std::string::npos ||
                        returned.find(boundary) != std::string_view::npos;
       ++attempt) {
    boundary += std::to_string(attempt);
  }

  std::string out;
  out.reserve(explanation.size() + status.size() + returned.size() + 1024);
  out += field("From", "Mail Delivery System <MAILER-DAEMON@" + host + ">");
  out += field("To", "<" + sanitise_address(report.original_sender) + ">");
  out += field("Subject", kind == Kind::delay     ? "Delayed Mail (still being retried)"
                          : kind == Kind::success ? "Successful Mail Delivery Report"
                                                  : "Undelivered Mail Returned to Sender");
  out += field("Date", message::rfc5322_date(report.created));
  out += field("Message-ID", "<" + sanitise(report.message_id, 255) + ">");
  out += field("Auto-Submitted", "auto-replied");  // RFC 3834 §5
  out += field("MIME-Version", "1.0");
  out +=
      "Content-Type: multipart/report; report-type=delivery-status;\r\n"
      "\tboundary=\"" +
      boundary + "\"\r\n";
  out += "\r\n";
  out += "This is a MIME-encapsulated message.\r\n\r\n";

  out += "--" + boundary + "\r\n";
  out += "Content-Description: Notification\r\n";
  out += std::string("Content-Type: text/plain; charset=") +
         (utf8_addresses ? "utf-8" : "us-ascii") + "\r\n\r\n";
  out += explanation;
  out += "\r\n--" + boundary + "\r\n";
  out += "Content-Description: Delivery report\r\n";
  out += utf8_addresses ? "Content-Type: message/global-delivery-status\r\n\r\n"
                        : "Content-Type: message/delivery-status\r\n\r\n";
  out += status;
  out += "\r\n--" + boundary + "\r\n";
  if (full) {
    out += "Content-Description: Undelivered message\r\n";
    out += utf8_returned ? "Content-Type: message/global\r\n\r\n"
                         : "Content-Type: message/rfc822\r\n\r\n";
  } else {
    out += kind == Kind::failure ? "Content-Description: Undelivered message headers\r\n"
                                 : "Content-Description: Message headers\r\n";
    out += utf8_returned ? "Content-Type: message/global-headers\r\n\r\n"
                         : "Content-Type: text/rfc822-headers\r\n\r\n";
  }
  out += returned;
  if (!returned.empty() && !returned.ends_with("\r\n")) out += "\r\n";
  out += "\r\n--" + boundary + "--\r\n";
  return out;
}

}  // namespace stokend::queue
