// See reply.h.
#include "mta/client/reply.h"

#include "common/enhanced_status.h"

namespace stokend::client {
namespace {

bool is_digit(char c) { return c >= '0' && c <= '9'; }

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
