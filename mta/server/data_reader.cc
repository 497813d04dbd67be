// The DATA / BDAT body reader. See data_reader.h for the contract.
//
// The reader is a small state machine over line boundaries. Plain content
// between line breaks is located with memchr and appended in one piece, so
// the per-byte work is only at CR, LF, NUL and a leading dot. A CR is held back
// (pending_cr_) until the next byte, possibly in the next call, shows whether
// it starts a CRLF or is bare.
#include "mta/server/data_reader.h"

#include <algorithm>
#include <cstring>
#include <utility>

namespace stokend::server {
namespace {

// Finds the next occurrence of one byte value, remembering the answer so
// that repeated questions over the same input cost one scan in total (a
// stream of bare CRs must not make the LF search quadratic).
class ByteFinder {
 public:
  ByteFinder(std::string_view input, char wanted) : input_(input), wanted_(wanted) {}

  // Index of the first `wanted` at or after `position`, or input.size().
  std::size_t find_from(std::size_t position) {
    if (!searched_ || (found_ < position && found_ != input_.size())) {
      const void* hit = std::memchr(input_.data() + position, wanted_, input_.size() - position);
      found_ = hit != nullptr
                   ? static_cast<std::size_t>(static_cast<const char*>(hit) - input_.data())
                   : input_.size();
      searched_ = true;
    }
    return found_;
  }

 private:
  std::string_view input_;
  char wanted_;
  std::size_t found_ = 0;
  bool searched_ = false;
};

}  // namespace

DataReader::DataReader(Limits limits) : limits_(limits) {}

std::size_t DataReader::consume(std::string_view input) {
  if (complete_) return 0;
  return process(input, true);
}

void DataReader::consume_chunk(std::string_view chunk) {
  if (complete_) return;
  process(chunk, false);
}

void DataReader::finish_chunks() {
  if (complete_) return;
  if (pending_cr_) {
    // A CR as the very last octet has no LF after it: it is bare.
    pending_cr_ = false;
    end_line(true);
  } else if (line_length_ > 0) {
    // The message must end with CRLF to be stored and relayed as lines.
    end_line(false);
  }
  complete_ = true;
}

std::string DataReader::take_message() {
  std::string taken = std::move(message_);
  message_.clear();
  return taken;
}

void DataReader::set_error(Error error) {
  // A bare line ending outranks a NUL seen before it: "\r\n\0.\n" is a
  // smuggling attempt dressed with a NUL, and is reported as one.
  if (error_ == Error::none || (error_ == Error::nul_octet && error == Error::bare_line_ending)) {
    error_ = error;
  }
}

void DataReader::add_content(const char* data, std::size_t length) {
  const std::size_t line_before = line_length_;
  const std::size_t size_before = received_size_;
  received_size_ += length;
  line_length_ += length;
  if (error_ != Error::none) return;  // keep scanning, store nothing more
  // Store exactly the octets that fit, so the stored prefix does not depend
  // on how the input was split into reads.
  std::size_t storable = length;
  Error overflow = Error::none;
  // RFC 5321 §4.5.3.1.6: a text line is at most 1000 octets with its CRLF
  // (counted after unstuffing); reported as soon as the line cannot fit.
  if (limits_.max_line_length != 0) {
    const std::size_t line_room =
        limits_.max_line_length >= 2 + line_before ? limits_.max_line_length - 2 - line_before : 0;
    if (storable > line_room) {
      storable = line_room;
      overflow = Error::line_too_long;
    }
  }
  // RFC 1870 §6.1 / RFC 5321 §4.5.3.1.7: refuse what exceeds the size we
  // accept.
  if (limits_.max_message_size != 0) {
    const std::size_t size_room = limits_.max_message_size - size_before;
    if (storable > size_room) {
      storable = size_room;
      overflow = Error::message_too_large;
    }
  }
  message_.append(data, storable);
  set_error(overflow);
}

void DataReader::end_line(bool bare) {
  if (line_position_ == LinePosition::after_leading_dot) {
    // A lone "." that did not end the data (it was not followed by a real
    // CRLF) is content.
    add_content(".", 1);
  }
  // RFC 5321 §2.3.8: bare CR and bare LF are not line endings; accepting
  // them lets a client smuggle a second message past another server.
  if (bare && !limits_.normalise_bare_line_endings) set_error(Error::bare_line_ending);
  received_size_ += 2;
  if (error_ == Error::none) {
    if (limits_.max_message_size != 0 && received_size_ > limits_.max_message_size) {
      set_error(Error::message_too_large);
    } else {
      message_.append("\r\n", 2);
    }
  }
  line_length_ = 0;
  line_position_ = LinePosition::start;
  line_follows_crlf_ = !bare;
}

std::size_t DataReader::process(std::string_view input, bool dot_processing) {
  const char* const data = input.data();
  const std::size_t size = input.size();
  ByteFinder carriage_returns(input, '\r');
  ByteFinder line_feeds(input, '\n');
  ByteFinder nul_octets(input, '\0');
  std::size_t position = 0;
  while (position < size) {
    const char byte = data[position];
    if (pending_cr_) {
      pending_cr_ = false;
      if (byte == '\n') {
        ++position;
        // RFC 5321 §4.1.1.4: CRLF "." CRLF ends the data. after_leading_dot
        // implies the line follows a real CRLF and is exactly ".".
        if (line_position_ == LinePosition::after_leading_dot) {
          complete_ = true;
          return position;
        }
        end_line(false);
      } else {
        end_line(true);  // the CR was bare; `byte` starts the next line
      }
      continue;
    }
    if (line_position_ == LinePosition::start) {
      line_position_ = LinePosition::middle;
      if (dot_processing && line_follows_crlf_ && byte == '.') {
        line_position_ = LinePosition::after_leading_dot;
        ++position;
        continue;
      }
    } else if (line_position_ == LinePosition::after_leading_dot && byte != '\r' && byte != '\n') {
      // RFC 5321 §4.5.2: a line starting with a dot and having more
      // characters loses that first dot (transparency).
      line_position_ = LinePosition::middle;
    }
    if (byte == '\r') {
      pending_cr_ = true;
      ++position;
      continue;
    }
    if (byte == '\n') {
      ++position;
      end_line(true);
      continue;
    }
    if (byte == '\0') {
      // RFC 5322 §3.5, RFC 2045 §2.7-2.8: no NUL without BINARYMIME (RFC
      // 3030 §3). Either way it is not stored; stripping is the leniency.
      ++position;
      if (limits_.strip_nul_octets) {
        ++nul_octets_stripped_;
      } else {
        set_error(Error::nul_octet);
      }
      continue;
    }
    const std::size_t stop =
        std::min({carriage_returns.find_from(position), line_feeds.find_from(position),
                  nul_octets.find_from(position)});
    add_content(data + position, stop - position);
    position = stop;
  }
  return position;
}

}  // namespace stokend::server
