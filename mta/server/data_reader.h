// Reads a message body sent with DATA (RFC 5321 §4.1.4, §4.5.2) or BDAT
// (RFC 3030), enforcing stokend's input rules.
//
// DATA: only CRLF "." CRLF ends the data. Leading dots are unstuffed
// (§4.5.2). A bare LF or a bare CR anywhere (the SMTP smuggling family:
// \n.\n, \r.\r, \n.\r\n, ...) is an error (5.5.2) unless normalise is set, in
// which case it is rewritten to CRLF and can never end the data. A line over
// max_line_length octets (CRLF included) is an error. A message over
// max_message_size is an error (5.3.4). After an error the reader keeps
// consuming (storing nothing more) until the real end of data, so the session
// stays in step with the client and can reply once.
//
// SMTP lines are delimited by CRLF only (RFC 5321 §2.3.8). When normalising,
// the text after a bare CR or LF starts a new stored line but not a new SMTP
// line: it is neither dot-unstuffed nor able to end the data, so "\n.\r\n"
// stores a line "." and the data goes on.
//
// NUL octets (message text excludes %d0, RFC 5322 §3.5; neither 7bit nor 8bit
// data holds NUL, RFC 2045 §2.7-2.8, and 8BITMIME carries 8bit data, RFC
// 6152 §3; only BINARYMIME, RFC 3030 §3, which stokend does not offer, would):
// a NUL anywhere in the content is an error (5.6.0) unless strip_nul_octets
// is set, in which case it is dropped and is no part of the message (not
// stored, not counted in size or line length). A NUL never ends or starts a
// line: "\r\n.\0\r\n" is a dot-stuffed line holding a NUL, not the end.
//
// BDAT: feed chunk bytes with consume_chunk(); the same bare line ending,
// line length and size checks apply across chunk boundaries, no dot
// processing; NUL octets are refused or stripped as in DATA (RFC 3030 §3:
// without BODY=BINARYMIME, BDAT content is 7bit or 8bitmime all the same). finish_chunks() after
// the LAST chunk; a last line without a line ending gets CRLF appended (counted in the size).
//
// size() counts message octets after unstuffing, each line ending as the two
// octets of CRLF; it keeps counting after an error. Only the first error is
// kept, except that a bare line ending replaces an earlier NUL error (the
// smuggling attempt is the finding to report); once there is an error,
// message() stops growing.
//
// The stored message always has CRLF line endings.
#pragma once

#include <cstddef>
#include <string>
#include <string_view>

namespace stokend::server {

class DataReader {
 public:
  enum class Error { none, bare_line_ending, line_too_long, message_too_large, nul_octet };

  struct Limits {
    std::size_t max_message_size = 0;    // octets; 0: no limit
    std::size_t max_line_length = 1000;  // octets incl. CRLF; 0: no limit
    bool normalise_bare_line_endings = false;
    bool strip_nul_octets = false;  // false: a NUL is Error::nul_octet
  };

  explicit DataReader(Limits limits);

  // DATA mode. Returns the number of bytes consumed; stops right after the
  // terminating CRLF.CRLF (complete() becomes true), leaving whatever follows
  // (pipelined commands) to the caller.
  std::size_t consume(std::string_view input);
  bool complete() const { return complete_; }

  // BDAT mode: all bytes of a chunk are consumed.
  void consume_chunk(std::string_view chunk);
  void finish_chunks();  // after BDAT ... LAST; complete() becomes true

  Error error() const { return error_; }
  std::size_t size() const { return received_size_; }  // message octets seen so far
  std::size_t nul_octets_stripped() const { return nul_octets_stripped_; }
  const std::string& message() const { return message_; }
  std::string take_message();

 private:
  // Where the reader is within the current line, for dot handling.
  enum class LinePosition {
    start,              // no byte of the line seen yet
    after_leading_dot,  // the line so far is a single '.' that may be stuffing
    middle
  };

  std::size_t process(std::string_view input, bool dot_processing);
  void add_content(const char* data, std::size_t length);
  void end_line(bool bare);
  void set_error(Error error);

  Limits limits_;
  std::string message_;
  std::size_t received_size_ = 0;
  std::size_t nul_octets_stripped_ = 0;
  std::size_t line_length_ = 0;  // octets of the current line after unstuffing
  Error error_ = Error::none;
  bool complete_ = false;
  LinePosition line_position_ = LinePosition::start;
  // The current line began right after a real CRLF (or at the start of the
  // data): only such a line can be dot-stuffed or end the data.
  bool line_follows_crlf_ = true;
  bool pending_cr_ = false;  // the last byte seen was a CR; the next decides
};

}  // namespace stokend::server
