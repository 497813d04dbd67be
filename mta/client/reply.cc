// See reply.h.
#include "mta/client/reply.h"

namespace stokend::client {
namespace {

bool is_digit(char c) { return c >= '0' && c <= '9'; }

// RFC 3463 §2: status-code = class "." subject "." detail, class 2, 4 or 5,
// subject and detail one to three digits.
std::size_t enhanced_code_length(std::string_view text) {
  std::size_t position = 0;
  if (text.empty() || (text[0] != '2' && text[0] != '4' && text[0] != '5')) return 0;
  position = 1;
  for (int part = 0; part < 2; ++part) {
    if (position >= text.size() || text[position] != '.') return 0;
    ++position;
    std::size_t digits = 0;
    while (position < text.size() && is_digit(text[position]) && digits < 4) {
      ++position;
      ++digits;
    }
    if (digits == 0 || digits > 3) return 0;
  }
  if (position < text.size() && text[position] != ' ') return 0;
  return position;
}

}  // namespace

std::string Reply::text() const {
  std::string joined;
  for (const auto& line : lines) {
    if (!joined.empty()) joined += ' ';
    joined += line;
  }
  return joined;
}

std::string Reply::to_string() const {
  std::string shown = std::to_string(code);
  if (!enhanced_code.empty()) shown += " " + enhanced_code;
  std::string joined = text();
  if (!joined.empty()) shown += " " + joined;
  return shown;
}

std::string take_enhanced_code(int reply_code, std::string& text) {
  std::size_t length = enhanced_code_length(text);
  if (length == 0 || text[0] - '0' != reply_code / 100) return {};
  std::string code = text.substr(0, length);
  text.erase(0, length < text.size() ? length + 1 : length);
  return code;
}

ReplyParser::Status ReplyParser::add_line(std::string_view line) {
  // RFC 5321 §4.2: Reply-code = %x32-35 %x30-35 %x30-39, then SP or "-"
  // (or nothing at all on the last line).
  if (line.size() < 3 || line[0] < '2' || line[0] > '5' || line[1] < '0' || line[1] > '5' ||
      !is_digit(line[2])) {
    error_ = "malformed reply line: no reply code";
    return Status::malformed;
  }
  if (line.size() > 3 && line[3] != ' ' && line[3] != '-') {
    error_ = "malformed reply line: no separator after the code";
    return Status::malformed;
  }
  int code = (line[0] - '0') * 100 + (line[1] - '0') * 10 + (line[2] - '0');
  if (!raw_lines_.empty() && code != reply_.code) {
    error_ = "malformed reply: code changes within a multi-line reply";
    return Status::malformed;
  }
  if (raw_lines_.size() >= max_lines_) {
    error_ = "malformed reply: more than " + std::to_string(max_lines_) + " lines";
    return Status::malformed;
  }
  reply_.code = code;
  raw_lines_.emplace_back(line.size() > 4 ? line.substr(4) : std::string_view{});
  bool last = line.size() == 3 || line[3] == ' ';
  if (!last) return Status::need_more;

  // RFC 2034 §3: every line of a multi-line reply carries the enhanced code;
  // take it from the first line and strip it from each line that has it.
  for (std::size_t i = 0; i < raw_lines_.size(); ++i) {
    std::string text = std::move(raw_lines_[i]);
    std::string enhanced = take_enhanced_code(code, text);
    if (i == 0) reply_.enhanced_code = enhanced;
    reply_.lines.push_back(std::move(text));
  }
  raw_lines_.clear();
  return Status::complete;
}

Reply ReplyParser::take() {
  Reply complete = std::move(reply_);
  reply_ = Reply{};
  return complete;
}

}  // namespace stokend::client
