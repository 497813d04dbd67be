// Command line framing for the SMTP session. See line_reader.h for the
// contract.
//
// Every LF ends a line; the line is valid only when that LF is preceded by a
// CR and no other CR occurs in it (RFC 5321 §2.3.8: lines end with CRLF, and
// a bare CR or LF must not be treated as one). The scan uses memchr, so a
// large pipelined burst costs one pass.
#include "mta/server/line_reader.h"

#include <algorithm>
#include <cstring>

namespace stokend::server {

void LineReader::set_max_line_length(std::size_t max_line_length) {
  max_line_length_ =
      std::max<std::size_t>(max_line_length, std::max<std::size_t>(2, partial_.size() + 1));
}

LineReader::LineReader(std::size_t max_line_length)
    // The shortest valid line is CRLF alone, so a smaller limit makes no sense.
    : max_line_length_(std::max<std::size_t>(max_line_length, 2)) {}

void LineReader::reset() {
  partial_.clear();
  draining_ = false;
}

LineReader::Status LineReader::next(std::string_view input, std::size_t& consumed) {
  const char* const data = input.data();
  const std::size_t size = input.size();
  std::size_t position = 0;
  while (position < size) {
    const auto* line_feed =
        static_cast<const char*>(std::memchr(data + position, '\n', size - position));
    if (draining_) {
      if (line_feed == nullptr) {
        position = size;
        break;
      }
      position = static_cast<std::size_t>(line_feed - data) + 1;
      draining_ = false;
      continue;
    }
    const std::size_t end =
        line_feed != nullptr ? static_cast<std::size_t>(line_feed - data) : size;
    // partial_ never exceeds max_line_length_ - 1 octets, leaving room for
    // the LF; a line that cannot fit is too long (RFC 5321 §4.5.3.1.4).
    const std::size_t room = max_line_length_ - 1 - partial_.size();
    if (end - position > room) {
      consumed = position + room + 1;
      partial_.clear();
      draining_ = true;
      return Status::too_long;
    }
    partial_.append(data + position, end - position);
    position = end;
    if (line_feed == nullptr) break;
    ++position;  // the LF
    consumed = position;
    const bool ends_with_cr = !partial_.empty() && partial_.back() == '\r';
    const bool has_inner_cr =
        !partial_.empty() && std::memchr(partial_.data(), '\r', partial_.size() - 1) != nullptr;
    if (!ends_with_cr || has_inner_cr) {
      partial_.clear();
      line_.clear();
      return Status::bad_line_ending;
    }
    partial_.pop_back();
    line_.swap(partial_);
    partial_.clear();
    return Status::line;
  }
  consumed = position;
  return Status::need_more;
}

}  // namespace stokend::server
