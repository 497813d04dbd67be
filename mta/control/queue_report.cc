// See queue_report.h.
#include "mta/control/queue_report.h"

#include <time.h>

#include <algorithm>
#include <chrono>
#include <cstdio>

namespace stokend::control {
namespace {

using queue::MessageDetails;
using queue::RecipientState;
using queue::RecipientStatus;
using queue::TimePoint;

constexpr std::size_t id_column_width = 20;
constexpr std::size_t size_column_width = 8;
constexpr std::size_t time_column_width = 20;
// Where the sender and recipients start: id, flag, size and time columns.
constexpr std::size_t address_column =
    id_column_width + 1 + 1 + size_column_width + 1 + time_column_width + 1;

std::string padded_right(std::string text, std::size_t width) {
  if (text.size() < width) text.append(width - text.size(), ' ');
  return text;
}

std::string padded_left(std::string text, std::size_t width) {
  if (text.size() < width) text.insert(0, width - text.size(), ' ');
  return text;
}

std::string formatted_local_time(TimePoint time, const char* format) {
  const std::time_t seconds = std::chrono::system_clock::to_time_t(time);
  std::tm local{};
  if (!::localtime_r(&seconds, &local)) return "?";
  char text[64];
  const std::size_t length = std::strftime(text, sizeof text, format, &local);
  return std::string(text, length);
}

std::string mailbox_or_null_sender(const std::string& sender) {
  return sender.empty() ? "MAILER-DAEMON" : printable(sender);
}

char listing_mark(const queue::MessageSummary& summary) {
  // Held wins: it is the state the administrator chose and it outlasts the
  // delivery that may still be running.
  if (summary.held) return '!';
  if (summary.in_flight) return '*';
  return ' ';
}

std::string_view status_name(RecipientStatus status) {
  switch (status) {
    case RecipientStatus::pending:
      return "pending";
    case RecipientStatus::delivered:
      return "delivered";
    case RecipientStatus::failed:
      return "failed";
    case RecipientStatus::expired:
      return "expired";
  }
  return "unknown";
}

std::string message_state(const queue::MessageSummary& summary) {
  std::string state = summary.held ? "held" : summary.pending > 0 ? "queued" : "finishing";
  if (summary.in_flight) state += ", delivery in progress";
  return state;
}

std::string_view message_kind(const queue::MessageSummary& summary) {
  if (summary.bounce) return "delivery status notification";
  if (summary.chat) return "chat";
  return "mail";
}

void add_field(std::string& text, std::string_view indent, std::string_view name,
               const std::string& value) {
  constexpr std::size_t name_width = 20;
  std::string label = std::string(indent) + std::string(name) + ":";
  text += padded_right(std::move(label), name_width) + value + "\n";
}

std::string recipient_report(const std::string& address, const RecipientState& state) {
  std::string text;
  add_field(text, "", "recipient", printable(address));
  std::string status(status_name(state.status));
  if (queue::is_final(state.status) && state.status != RecipientStatus::delivered) {
    status += state.failure_reported ? ", reported to the sender" : ", not yet reported";
  }
  add_field(text, "  ", "status", status);
  add_field(text, "  ", "attempts", std::to_string(state.attempts));
  if (state.last_attempt != TimePoint{}) {
    add_field(text, "  ", "last attempt", full_time(state.last_attempt));
  }
  if (state.status == RecipientStatus::pending) {
    add_field(text, "  ", "next attempt", full_time(state.next_attempt));
  }
  if (!state.last_reply.empty()) add_field(text, "  ", "last reply", printable(state.last_reply));
  return text;
}

std::string header_lines(std::string_view headers) {
  std::string text;
  while (!headers.empty()) {
    const std::size_t end = headers.find('\n');
    std::string_view line = headers.substr(0, end);
    if (line.ends_with('\r')) line.remove_suffix(1);
    text += printable(line) + "\n";
    if (end == std::string_view::npos) break;
    headers.remove_prefix(end + 1);
  }
  return text;
}

}  // namespace

std::string printable(std::string_view text) {
  std::string result;
  result.reserve(text.size());
  const auto escape = [&result](unsigned char byte) {
    char escaped[5];
    std::snprintf(escaped, sizeof escaped, "\\x%02x", byte);
    result += escaped;
  };
  for (std::size_t i = 0; i < text.size(); ++i) {
    const auto byte = static_cast<unsigned char>(text[i]);
    const bool c1_control = byte == 0xc2 && i + 1 < text.size() &&
                            static_cast<unsigned char>(text[i + 1]) >= 0x80 &&
                            static_cast<unsigned char>(text[i + 1]) <= 0x9f;
    if (c1_control) {
      escape(byte);
      escape(static_cast<unsigned char>(text[++i]));
    } else if ((byte < 0x20 && byte != '\t') || byte == 0x7f) {
      escape(byte);
    } else {
      result += static_cast<char>(byte);
    }
  }
  return result;
}

std::string listing_time(TimePoint time) { return formatted_local_time(time, "%a %b %e %H:%M:%S"); }

std::string full_time(TimePoint time) { return formatted_local_time(time, "%Y-%m-%d %H:%M:%S %z"); }

std::string count_of(std::size_t count, std::string_view singular, std::string_view plural) {
  return std::to_string(count) + " " + std::string(count == 1 ? singular : plural);
}

std::string listing_heading() {
  return padded_right("-Queue ID-", id_column_width + 1) + " " + "--Size--" + " " +
         "----Arrival Time----" + " " + "-Sender/Recipient-------\n";
}

std::string listing_entry(const MessageDetails& message) {
  const queue::MessageSummary& summary = message.summary;
  std::string text = padded_right(summary.id, id_column_width) + listing_mark(summary) + " " +
                     padded_left(std::to_string(summary.size), size_column_width) + " " +
                     padded_right(listing_time(summary.arrival), time_column_width) + " " +
                     mailbox_or_null_sender(summary.sender) + "\n";
  const std::string indent(address_column, ' ');
  const std::size_t count = std::min(message.recipients.size(), message.state.recipients.size());
  for (std::size_t i = 0; i < count; ++i) {
    const RecipientState& state = message.state.recipients[i];
    if (state.status != RecipientStatus::pending) continue;
    if (!state.last_reply.empty()) text += indent + "(" + printable(state.last_reply) + ")\n";
    text += indent + printable(message.recipients[i]) + "\n";
  }
  return text + "\n";
}

std::string listing_summary(std::size_t messages, std::size_t pending_recipients) {
  return "-- " + count_of(messages, "message", "messages") + ", " +
         count_of(pending_recipients, "pending recipient", "pending recipients") + "\n";
}

std::string empty_queue_text() { return "Mail queue is empty\n"; }

std::string message_report(const MessageDetails& message) {
  const queue::MessageSummary& summary = message.summary;
  std::string text;
  add_field(text, "", "id", summary.id);
  add_field(text, "", "state", message_state(summary));
  add_field(text, "", "arrival", full_time(summary.arrival));
  add_field(text, "", "size", std::to_string(summary.size) + " bytes");
  add_field(text, "", "sender", summary.sender.empty() ? "<>" : printable(summary.sender));
  add_field(text, "", "kind", std::string(message_kind(summary)));
  add_field(
      text, "", "recipients",
      std::to_string(summary.recipients) + ", " + std::to_string(summary.pending) + " pending");
  add_field(text, "", "next attempt",
            summary.held           ? "none while held"
            : summary.next_attempt ? full_time(*summary.next_attempt)
                                   : "none");
  add_field(text, "", "delay warning", message.state.delay_warning_sent ? "sent" : "not sent");
  const std::size_t count = std::min(message.recipients.size(), message.state.recipients.size());
  for (std::size_t i = 0; i < count; ++i) {
    text += "\n" + recipient_report(message.recipients[i], message.state.recipients[i]);
  }
  text += "\nheader section:\n";
  text += message.headers.empty() ? "(unreadable)\n" : header_lines(message.headers);
  return text;
}

}  // namespace stokend::control
