// The head of an HTTP/1.x request (RFC 9112 §2-3): what the metrics
// endpoint needs of it, the method and the path, read from the bytes a
// client sent so far.
//
// Contract: parse_request_head() never throws and never reads past the
// view. It looks for the empty line that ends the head (CRLF CRLF; a bare
// LF ends lines too, RFC 9112 §2.2), within max_size octets; the request
// line must be method SP origin-form target SP HTTP/1.0 or HTTP/1.1
// (RFC 9112 §3). Header fields are not interpreted: the endpoint answers
// one request per connection and reads no body, so nothing in them changes
// the answer. A request line with control characters, an absolute-form or
// asterisk-form target, or another version is malformed.
#pragma once

#include <cstddef>
#include <string>
#include <string_view>

namespace stokend::http {

struct RequestHead {
  enum class Status {
    incomplete,  // no end of head yet, and under max_size: read more
    complete,
    too_large,  // no end of head within max_size octets
    malformed,
  };
  Status status = Status::incomplete;
  std::string method;  // as sent (methods are case-sensitive, RFC 9110 §9.1)
  std::string path;    // the target without its query ("/metrics?x" -> "/metrics")
  std::string error;   // why, when malformed
};

RequestHead parse_request_head(std::string_view received, std::size_t max_size);

}  // namespace stokend::http
