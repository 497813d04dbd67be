// Command line framing for the SMTP session. See line_reader.h for the
// contract.
//
// Every LF ends a line; the line is valid only when that LF is preceded by a
// CR and no other CR occurs in it (RFC 5321 §2.3.8: lines end with CRLF, and
// a bare CR or LF must not be treated as one), and it holds no NUL. The scan
// uses memchr, so a large pipelined burst costs one pass.
#include "mta/server/line_reader.h"

#include <algorithm>
#include <cctype>
#include <cstring>
#include <utility>

namespace stokend::server {
namespace {

constexpr std::string_view auth_prefix = "AUTH ";

}  // namespace

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
  auth_line_ = false;
}

std::size_t LineReader::auth_limit() const { return std::max(auth_line_length_, max_line_length_); }

std::size_t LineReader::room_within(std::size_t limit) const {
  return partial_.size() < limit ? limit - 1 - partial_.size() : 0;
}

bool LineReader::line_starts_with_auth(std::string_view rest) const {
  if (auth_line_length_ == 0 || max_line_length_ <= auth_prefix.size()) return false;
  std::string first(partial_.substr(0, auth_prefix.size()));
  first.append(rest.substr(0, auth_prefix.size() - first.size()));
  if (first.size() < auth_prefix.size()) return false;
  return std::equal(first.begin(), first.end(), auth_prefix.begin(), [](char a, char b) {
    return std::toupper(static_cast<unsigned char>(a)) == b;
  });
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
    const std::string_view rest(data + position, end - position);
    // partial_ never exceeds the limit - 1 octets, leaving room for the LF; a
    // line that cannot fit is too long (RFC 5321 §4.5.3.1.4). An AUTH line
    // or SASL response may be longer (RFC 4954 §4).
    if (!auth_line_ && rest.size() > room_within(max_line_length_) && line_starts_with_auth(rest)) {
      auth_line_ = true;
    }
    const std::size_t room = room_within(auth_line_ ? auth_limit() : max_line_length_);
    if (rest.size() > room) {
      consumed = position + room + 1;
      partial_.clear();
      draining_ = true;
      const bool auth_line = std::exchange(auth_line_, false);
      return auth_line && auth_line_length_ != 0 ? Status::auth_too_long : Status::too_long;
    }
    partial_.append(rest);
    position = end;
    if (line_feed == nullptr) break;
    ++position;  // the LF
    consumed = position;
    auth_line_ = false;
    const bool ends_with_cr = !partial_.empty() && partial_.back() == '\r';
    const bool has_inner_cr =
        !partial_.empty() && std::memchr(partial_.data(), '\r', partial_.size() - 1) != nullptr;
    if (!ends_with_cr || has_inner_cr) {
      partial_.clear();
      line_.clear();
      return Status::bad_line_ending;
    }
    partial_.pop_back();
    if (std::memchr(partial_.data(), '\0', partial_.size()) != nullptr) {
      partial_.clear();
      line_.clear();
      return Status::nul_octet;
    }
    line_.swap(partial_);
    partial_.clear();
    return Status::line;
  }
  consumed = position;
  return Status::need_more;
}

}  // namespace stokend::server
