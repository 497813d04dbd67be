// The control protocol spoken between stokenctl and the daemon over the
// control socket, shared by both sides.
//
// One request per connection: a single line "COMMAND [ID]" ending in LF
// (CRLF accepted), at most max_request_line octets with its line end:
//   LIST | SHOW <id> | FLUSH [<id>]
//   HOLD | RELEASE | DELETE | REQUEUE  <id> | ALL | @<domain>
//   RELOAD (the configuration: daemon/reload.h)
// Command words are case-insensitive; an id is a spool queue id (lowercase
// hex digits). ALL selects every queued message; @<domain> the messages
// whose pending recipients are all at that domain (a message that also has
// recipients elsewhere is left alone, so nobody else's mail goes with it). The daemon answers with
// a status line, "OK" or "ERR <reason>", then body lines, then a line holding a single "." and
// closes the connection. Body lines that start with "." get one more "." in front (dot-stuffing, as
// in SMTP), so the end line cannot be forged by content.
//
// Contract: pure functions on text; nothing here touches a socket.
#pragma once

#include <cstddef>
#include <optional>
#include <string>
#include <string_view>
#include <utility>

namespace stokend::control {

// RFC 5321's text line limit, which no legitimate request comes near.
inline constexpr std::size_t max_request_line = 1000;
// Queue ids are 20 hex digits today; the bound only keeps junk out.
inline constexpr std::size_t max_message_id_length = 64;

enum class Command { list, show, flush, hold, release, remove, requeue, reload };

struct Request {
  Command command = Command::list;
  std::string id;      // one message; empty for LIST, RELOAD, a FLUSH of every message, selections
  bool all = false;    // ALL: every message
  std::string domain;  // @domain: the messages for that domain only (lowercase)

  Request(Command command_ = Command::list, std::string id_ = {})
      : command(command_), id(std::move(id_)) {}
  static Request every_message(Command command);
  static Request for_domain(Command command, std::string domain);

  bool operator==(const Request&) const = default;
  bool selects_many() const { return all || !domain.empty(); }
};

// Lowercase hex digits, 1 to max_message_id_length of them.
bool is_message_id(std::string_view text);

// A domain name as a selection names it: dot-separated labels of letters,
// digits, '-' and UTF-8 octets, at most 255 octets (RFC 5321 §4.5.3.1.2).
bool is_selectable_domain(std::string_view text);

// Parses one request line, without its LF (a CR before it is ignored).
// On failure returns
// nothing and says why in error (the text of the ERR reply).
std::optional<Request> parse_request(std::string_view line, std::string& error);

// The request line for a request, with its LF.
std::string format_request(const Request& request);

// What the daemon answered.
struct Answer {
  bool ok = true;
  std::string reason;  // for ERR
  std::string body;    // whole lines, each ending in LF; not dot-stuffed
};

std::string status_line(const Answer& answer);  // "OK\n" or "ERR reason\n"

// Appends text to wire as body lines, dot-stuffed. A last line without its
// LF gets one.
void append_body(std::string& wire, std::string_view text);

inline constexpr std::string_view end_of_answer = ".\n";

// The whole answer as sent: status line, stuffed body, end line.
std::string encode_answer(const Answer& answer);

// Reads an answer as received up to the close. Nothing (with error set) when
// it has no status line or was cut off before its end line.
std::optional<Answer> decode_answer(std::string_view wire, std::string& error);

}  // namespace stokend::control
