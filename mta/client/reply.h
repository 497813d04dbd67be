// SMTP and LMTP replies as the client reads them: RFC 5321 §4.2 syntax,
// multi-line replies, and enhanced status codes (RFC 3463, RFC 2034).
//
// Contract: ReplyParser takes one line at a time (without its line ending)
// and reports when a reply is complete. A line that does not start with a
// three-digit code 200-559 followed by SP, "-" or the end of the line, or
// whose code differs from the earlier lines of the same reply, or a reply
// with more than max_lines lines, is malformed: the caller must drop the
// connection, since it can no longer tell which reply answers which command.
#pragma once

#include <cstddef>
#include <string>
#include <string_view>
#include <vector>

namespace stokend::client {

struct Reply {
  int code = 0;
  // "2.1.5" when the reply carries an enhanced status code whose class
  // matches the reply code (RFC 3463 §2); empty otherwise.
  std::string enhanced_code;
  // The text of each line, without code, separator and enhanced code.
  std::vector<std::string> lines;

  bool is_positive() const { return code >= 200 && code < 300; }
  bool is_intermediate() const { return code >= 300 && code < 400; }
  bool is_transient_failure() const { return code >= 400 && code < 500; }
  bool is_permanent_failure() const { return code >= 500 && code < 600; }

  std::string text() const;       // the lines joined by single spaces
  std::string to_string() const;  // "550 5.1.1 text", for results and logs
};

class ReplyParser {
 public:
  enum class Status { need_more, complete, malformed };

  explicit ReplyParser(std::size_t max_lines) : max_lines_(max_lines) {}

  Status add_line(std::string_view line);
  // The complete reply; the parser is then ready for the next one.
  Reply take();
  // Why the last line was malformed.
  const std::string& error() const { return error_; }

 private:
  std::size_t max_lines_;
  Reply reply_;
  std::vector<std::string> raw_lines_;
  std::string error_;
};

}  // namespace stokend::client
