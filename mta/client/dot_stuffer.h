// Encodes a message for the SMTP DATA command: RFC 5321 §4.5.2 transparency
// (a line starting with "." gets another ".") and the end-of-data marker
// CRLF "." CRLF (§4.1.1.4).
//
// Contract: the message is expected with CRLF line endings. A dot is also
// doubled after a bare LF, so that a lenient receiver that takes LF as a
// line end cannot see an early end of data (the SMTP smuggling family).
// If the message does not end with CRLF, one is added before the final
// ".". Output comes in pieces of about `budget` octets, so a large message
// is streamed; the message must outlive the encoder.
#pragma once

#include <cstddef>
#include <string>
#include <string_view>

namespace stokend::client {

class DotStuffer {
 public:
  explicit DotStuffer(std::string_view message) : message_(message) {}

  // Appends up to about `budget` encoded octets (a few more at most, for a
  // doubled dot or the end marker) to `out`.
  void append_next(std::string& out, std::size_t budget);
  bool finished() const { return finished_; }

 private:
  std::string_view message_;
  std::size_t position_ = 0;
  bool at_line_start_ = true;
  bool finished_ = false;
};

// The whole encoding at once.
std::string dot_stuff(std::string_view message);

}  // namespace stokend::client
