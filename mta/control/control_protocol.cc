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
  // selection: an id, ALL or @domain.
  enum class Id { none, required, optional, selection } id;
};

constexpr std::array<CommandWord, 8> command_words = {{
    {Command::list, "LIST", CommandWord::Id::none},
    {Command::show, "SHOW", CommandWord::Id::required},
    {Command::flush, "FLUSH", CommandWord::Id::optional},
    {Command::hold, "HOLD", CommandWord::Id::selection},
    {Command::release, "RELEASE", CommandWord::Id::selection},
    {Command::remove, "DELETE", CommandWord::Id::selection},
    {Command::requeue, "REQUEUE", CommandWord::Id::selection},
    {Command::reload, "RELOAD", CommandWord::Id::none},
}};

constexpr std::string_view all_word = "ALL";

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

Request Request::every_message(Command command) {
  Request request(command);
  request.all = true;
  return request;
}

Request Request::for_domain(Command command, std::string domain) {
  Request request(command);
  request.domain = std::move(domain);
  return request;
}

bool is_selectable_domain(std::string_view text) {
  if (text.empty() || text.size() > 255) return false;
  std::size_t label = 0;
  for (const char c : text) {
    const auto octet = static_cast<unsigned char>(c);
    if (c == '.') {
      if (label == 0) return false;
      label = 0;
      continue;
    }
    const bool allowed = (c >= '0' && c <= '9') ||
                         (ascii_lower(c) >= 'a' && ascii_lower(c) <= 'z') || c == '-' ||
                         octet >= 0x80;
    if (!allowed || ++label > 63) return false;
  }
  return label != 0;
}

std::optional<Request> parse_request(std::string_view line, std::string& error) {
  if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
  const std::size_t space = line.find(' ');
  const std::string_view word = line.substr(0, space);
  const bool has_argument = space != std::string_view::npos;
  const std::string_view argument = has_argument ? line.substr(space + 1) : std::string_view();
  if (word.empty()) {
    error = "empty request";
    return std::nullopt;
  }
  const CommandWord* command = find_command(word);
  if (!command) {
    error = "unknown command";
    return std::nullopt;
  }
  if (!has_argument) {
    if (command->id == CommandWord::Id::required || command->id == CommandWord::Id::selection) {
      error = std::string(command->word) + " needs a queue id";
      return std::nullopt;
    }
    return Request{command->command, {}};
  }
  if (command->id == CommandWord::Id::none) {
    error = std::string(command->word) + " takes no argument";
    return std::nullopt;
  }
  if (command->id == CommandWord::Id::selection) {
    if (argument == all_word) return Request::every_message(command->command);
    if (argument.starts_with('@')) {
      const std::string domain = ascii_lowercase(argument.substr(1));
      if (!is_selectable_domain(domain)) {
        error = "malformed domain";
        return std::nullopt;
      }
      return Request::for_domain(command->command, domain);
    }
  }
  if (!is_message_id(argument)) {
    error = "malformed queue id";
    return std::nullopt;
  }
  return Request{command->command, std::string(argument)};
}

std::string format_request(const Request& request) {
  std::string line(word_for(request.command).word);
  if (request.all) {
    line += " " + std::string(all_word);
  } else if (!request.domain.empty()) {
    line += " @" + request.domain;
  } else if (!request.id.empty()) {
    line += " " + request.id;
  }
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
