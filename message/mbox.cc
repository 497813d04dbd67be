// See mbox.h.
#include "message/mbox.h"

#include <time.h>

#include <array>

namespace stokend::message {
namespace {

constexpr std::string_view separator = "From ";

// ">*From ": a line mboxrd quotes (the separator itself when there is no '>').
bool is_from_line(std::string_view line) {
  std::size_t quotes = 0;
  while (quotes < line.size() && line[quotes] == '>') ++quotes;
  return line.substr(quotes).starts_with(separator);
}

}  // namespace

bool looks_like_mbox(std::string_view text) { return text.starts_with(separator); }

std::string mbox_entry(std::string_view sender, std::int64_t unix_seconds,
                       std::string_view message) {
  const time_t when = static_cast<time_t>(unix_seconds);
  tm utc{};
  gmtime_r(&when, &utc);
  std::array<char, 64> date{};
  strftime(date.data(), date.size(), "%a %b %e %H:%M:%S %Y", &utc);

  std::string entry = std::string(separator) + std::string(sender) + " " + date.data() + "\n";
  while (!message.empty()) {
    const std::size_t newline = message.find('\n');
    std::string_view line = message.substr(0, newline);
    message.remove_prefix(newline == std::string_view::npos ? message.size() : newline + 1);
    if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
    if (is_from_line(line)) entry += '>';
    entry.append(line);
    entry += '\n';
  }
  entry += '\n';
  return entry;
}

std::vector<std::string> split_mbox(std::string_view text) {
  std::vector<std::string> messages;
  bool inside = false;
  std::string current;
  const auto finish = [&] {
    // The empty line written before the next separator is not the message's.
    if (current.ends_with("\n\n")) current.pop_back();
    if (inside) messages.push_back(std::move(current));
    current.clear();
  };
  while (!text.empty()) {
    const std::size_t newline = text.find('\n');
    const std::string_view line =
        text.substr(0, newline == std::string_view::npos ? text.size() : newline + 1);
    text.remove_prefix(line.size());
    if (line.starts_with(separator)) {
      finish();
      inside = true;
      continue;
    }
    if (!inside) continue;
    current.append(is_from_line(line) ? line.substr(1) : line);
  }
  finish();
  return messages;
}

}  // namespace stokend::message
