// Splits the SMTP command stream into command lines.
//
// Contract (RFC 5321 §2.3.8, §4.5.3.1.4): a command line ends with CRLF and
// only CRLF. A bare LF, or a CR not followed by LF, inside a line makes the
// line invalid (reported once the line's LF arrives; a bare LF is itself
// that LF, so "A\nB\r\n" is one invalid line "A" and then the line "B").
// A line holding a NUL octet is invalid too (reported at its LF): a command
// line is text (RFC 5321 §2.3.1, §4.1.1), and a NUL would reach replies, logs
// and the Received field.
// A line longer than max_line_length octets (CRLF included) is reported as
// too long as soon as the limit is passed; the reader then drains input up
// to and including the next LF, so the client's next line is read cleanly.
//
// AUTH (RFC 4954 §4): when an AUTH line length is set, a line starting with
// "AUTH " (any case), and the one line after expect_sasl_response(), may be
// up to that many octets instead; passing it is reported as auth_too_long,
// drained the same way. Whether a line is an AUTH command is decided by its
// first five octets, which are always known before the ordinary limit can
// be passed (the exception needs an ordinary limit of at least 6 octets).
//
// The reader never holds more than the applicable limit of a line.
#pragma once

#include <cstddef>
#include <string>
#include <string_view>

namespace stokend::server {

class LineReader {
 public:
  enum class Status {
    need_more,        // consumed everything, no complete line yet
    line,             // line() holds one command line without its CRLF
    too_long,         // a line passed the limit (reported once per line)
    auth_too_long,    // an AUTH line or SASL response passed the AUTH limit
    bad_line_ending,  // the line contained a bare LF or a bare CR
    nul_octet         // the line contained a NUL octet
  };

  explicit LineReader(std::size_t max_line_length);

  // Consumes bytes from input, stops after the first event. `consumed` tells
  // how many bytes were taken; call again with the rest.
  Status next(std::string_view input, std::size_t& consumed);

  const std::string& line() const { return line_; }
  void reset();  // forget any partial line (e.g. after STARTTLS)
  // Raises (or lowers) the limit for the lines still to come.
  void set_max_line_length(std::size_t max_line_length);
  // The limit of AUTH command lines and SASL responses; 0: no exception.
  // Never lower than the ordinary limit in effect.
  void set_auth_line_length(std::size_t auth_line_length) { auth_line_length_ = auth_line_length; }
  // The next line is a SASL response (after a 334 challenge). Holds for one
  // line only, and reset() forgets it.
  void expect_sasl_response() { auth_line_ = true; }
  bool has_partial_line() const { return !partial_.empty() || draining_; }

 private:
  std::size_t auth_limit() const;
  // Octets the current line may still take before its LF under `limit`.
  std::size_t room_within(std::size_t limit) const;
  bool line_starts_with_auth(std::string_view rest) const;

  std::size_t max_line_length_;
  std::size_t auth_line_length_ = 0;
  std::string line_;        // the last complete line returned with Status::line
  std::string partial_;     // bytes of the line being read, CR included, LF not
  bool draining_ = false;   // discarding the rest of an overlong line
  bool auth_line_ = false;  // the line being read may be up to the AUTH limit
};

}  // namespace stokend::server
