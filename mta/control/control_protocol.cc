// See control_protocol.h.
#include "mta/control/control_protocol.h"

#include <algorithm>
#include <array>
#include <cctype>
#include <utility>

#include "common/ascii.h"

namespace stokend::control {
namespace {

struct CommandWord {
  Command command;
  std::string_view word;
  enum class Id { none, required, optional } id;
};

constexpr std::array<CommandWord, 7> command_words = {{
    {Command::list, "LIST", CommandWord::Id::none},
    {Command::show, "SHOW", CommandWord::Id::required},
    {Command::flush, "FLUSH", CommandWord::Id::optional},
    {Command::hold, "HOLD", CommandWord::Id::required},
    {Command::release, "RELEASE", CommandWord::Id::required},
    {Command::remove, "DELETE", CommandWord::Id::required},
    {Command::reload, "RELOAD", CommandWord::Id::none},
}};

const CommandWord* find_command(std::string_view word) {
  for (const CommandWord& candidate : command_words) {
    if (equals_ignoring_case(candidate.word, word)) return &candidate;
  }
  return nullptr;
}

const CommandWord& word_for(Command command) {
  for (const CommandWord& candidate : command_words) {
    if (candidate.command == command) return candidate;
  }
  return command_words.front();
}

// A reason travels on the status line, so it must stay one line.
std::string one_line(std::string_view text) {
  std::string line(text);
  std::replace_if(
      line.begin(), line.end(), [](char c) { return c == '\r' || c == '\n'; }, ' ');
  return line;
}

}  // namespace

bool is_message_id(std::string_view text) {
  if (text.empty() || text.size() > max_message_id_length) return false;
  return std::all_of(text.begin(), text.end(),
                     [](char c) { return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'); });
}

std::optional<Request> parse_request(std::string_view line, std::string& error) {
  if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
  const std::size_t space = line.find(' ');
  const std::string_view word = line.substr(0, space);
  const std::optional<std::string_view> argument =
      space == std::string_view::npos ? std::nullopt : std::optional(line.substr(space + 1));
  if (word.empty()) {
    error = "empty request";
    return std::nullopt;
  }
  const CommandWord* command = find_command(word);
  if (!command) {
    error = "unknown command";
    return std::nullopt;
  }
  if (!argument) {
    if (command->id == CommandWord::Id::required) {
      error = std::string(command->word) + " needs a queue id";
      return std::nullopt;
    }
    return Request{command->command, {}};
  }
  if (command->id == CommandWord::Id::none) {
    error = std::string(command->word) + " takes no argument";
    return std::nullopt;
  }
  if (!is_message_id(*argument)) {
    error = "malformed queue id";
    return std::nullopt;
  }
  return Request{command->command, std::string(*argument)};
}

std::string format_request(const Request& request) {
  std::string line(word_for(request.command).word);
  if (!request.id.empty()) line += " " + request.id;
  return line + "\n";
}

std::string status_line(const Answer& answer) {
  return answer.ok ? "OK\n" : "ERR " + one_line(answer.reason) + "\n";
}

void append_body(std::string& wire, std::string_view text) {
  while (!text.empty()) {
    const std::size_t end = text.find('\n');
    const std::string_view line = text.substr(0, end);
    if (line.starts_with('.')) wire += '.';
    wire += line;
    wire += '\n';
    if (end == std::string_view::npos) break;
    text.remove_prefix(end + 1);
  }
}

std::string encode_answer(const Answer& answer) {
  std::string wire = status_line(answer);
  append_body(wire, answer.body);
  wire += end_of_answer;
  return wire;
}

std::optional<Answer> decode_answer(std::string_view wire, std::string& error) {
  const std::size_t status_end = wire.find('\n');
  if (status_end == std::string_view::npos) {
    error = wire.empty() ? "the daemon closed the connection without an answer"
                         : "the daemon's answer was cut off";
    return std::nullopt;
  }
  Answer answer;
  const std::string_view status = wire.substr(0, status_end);
  if (status == "OK") {
    answer.ok = true;
  } else if (status.starts_with("ERR")) {
    answer.ok = false;
    answer.reason = std::string(status.substr(status.size() > 3 ? 4 : 3));
  } else {
    error = "the daemon sent an unexpected answer: " + std::string(status.substr(0, 80));
    return std::nullopt;
  }
  std::string_view rest = wire.substr(status_end + 1);
  for (;;) {
    const std::size_t end = rest.find('\n');
    if (end == std::string_view::npos) {
      error = "the daemon's answer was cut off";
      return std::nullopt;
    }
    std::string_view line = rest.substr(0, end);
    rest.remove_prefix(end + 1);
    if (line == ".") return answer;
    if (line.starts_with('.')) line.remove_prefix(1);
    answer.body += line;
    answer.body += '\n';
  }
}

}  // namespace stokend::control
