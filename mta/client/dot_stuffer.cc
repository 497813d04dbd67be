// See dot_stuffer.h.
#include "mta/client/dot_stuffer.h"

#include <algorithm>

namespace stokend::client {

void DotStuffer::append_next(std::string& out, std::size_t budget) {
  if (finished_) return;
  std::size_t appended = 0;
  while (position_ < message_.size() && appended < budget) {
    if (at_line_start_ && message_[position_] == '.') {
      out += '.';
      ++appended;
    }
    std::size_t newline = message_.find('\n', position_);
    std::size_t line_end = newline == std::string_view::npos ? message_.size() : newline + 1;
    std::size_t take = std::min(line_end - position_, std::max<std::size_t>(budget - appended, 1));
    out.append(message_.substr(position_, take));
    position_ += take;
    appended += take;
    at_line_start_ = message_[position_ - 1] == '\n';
  }
  if (position_ < message_.size()) return;
  bool ends_with_crlf = message_.size() >= 2 && message_.substr(message_.size() - 2) == "\r\n";
  if (!message_.empty() && !ends_with_crlf) out += "\r\n";
  out += ".\r\n";
  finished_ = true;
}

std::string dot_stuff(std::string_view message) {
  DotStuffer stuffer(message);
  std::string out;
  out.reserve(message.size() + message.size() / 64 + 5);
  while (!stuffer.finished()) stuffer.append_next(out, message.size() + 1);
  return out;
}

}  // namespace stokend::client
