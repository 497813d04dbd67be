// Splits the SMTP command stream into command lines.
//
// Contract (RFC 5321 §2.3.8, §4.5.3.1.4): a command line ends with CRLF and
// only CRLF. A bare LF, or a CR not followed by LF, inside a line makes the
// line invalid (reported once the line's LF arrives; a bare LF is itself
// that LF, so "A\nB\r\n" is one invalid line "A" and then the line "B").
// A line longer than max_line_length octets (CRLF included) is reported as
// too long as soon as the limit is passed; the reader then drains input up
// to and including the next LF, so the client's next line is read cleanly.
// The reader never holds more than max_line_length bytes of a line.
#pragma once

#include <cstddef>
#include <string>
#include <string_view>

namespace stokend::server {

class LineReader {
 public:
  enum class Status {
    need_more,       // consumed everything, no complete line yet
    line,            // line() holds one command line without its CRLF
    too_long,        // a line passed the limit (reported once per line)
    bad_line_ending  // the line contained a bare LF or a bare CR
  };

  explicit LineReader(std::size_t max_line_length);

  // Consumes bytes from input, stops after the first event. `consumed` tells
  // how many bytes were taken; call again with the rest.
  Status next(std::string_view input, std::size_t& consumed);

  const std::string& line() const { return line_; }
  void reset();  // forget any partial line (e.g. after STARTTLS)
  // Raises (or lowers) the limit for the lines still to come.
  void set_max_line_length(std::size_t max_line_length);
  bool has_partial_line() const { return !partial_.empty() || draining_; }

 private:
  std::size_t max_line_length_;
  std::string line_;       // the last complete line returned with Status::line
  std::string partial_;    // bytes of the line being read, CR included, LF not
  bool draining_ = false;  // discarding the rest of an overlong line
};

}  // namespace stokend::server
