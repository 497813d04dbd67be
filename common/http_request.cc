// See http_request.h.
#include "common/http_request.h"

namespace stokend::http {
namespace {

// RFC 9110 §5.6.2: token characters.
bool is_tchar(char c) {
  if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9')) return true;
  constexpr std::string_view others = "!#$%&'*+-.^_`|~";
  return others.find(c) != std::string_view::npos;
}

// Visible US-ASCII, as a request target consists of (RFC 3986 characters).
bool is_target_char(char c) { return c > 0x20 && c < 0x7f; }

RequestHead malformed(std::string why) {
  RequestHead head;
  head.status = RequestHead::Status::malformed;
  head.error = std::move(why);
  return head;
}

}  // namespace

RequestHead parse_request_head(std::string_view received, std::size_t max_size) {
  // The end of the head: the first empty line. Leading empty lines before
  // the request line are skipped (RFC 9112 §2.2 allows a server to).
  std::size_t start = 0;
  while (start < received.size() && (received[start] == '\r' || received[start] == '\n')) {
    if (received[start] == '\r' && (start + 1 >= received.size() || received[start + 1] != '\n')) {
      break;
    }
    start += received[start] == '\r' ? 2 : 1;
  }
  std::size_t end = std::string_view::npos;
  for (std::size_t position = start; position < received.size(); ++position) {
    if (received[position] != '\n') continue;
    // "\n\n" or "\n\r\n" after a line: the empty line.
    if (position + 1 < received.size() && received[position + 1] == '\n') {
      end = position + 2;
      break;
    }
    if (position + 2 < received.size() && received[position + 1] == '\r' &&
        received[position + 2] == '\n') {
      end = position + 3;
      break;
    }
  }
  if (end == std::string_view::npos || end > max_size) {
    RequestHead head;
    head.status = received.size() >= max_size || end != std::string_view::npos
                      ? RequestHead::Status::too_large
                      : RequestHead::Status::incomplete;
    return head;
  }

  std::string_view line = received.substr(start, received.find('\n', start) - start);
  if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
  const auto first_space = line.find(' ');
  if (first_space == std::string_view::npos || first_space == 0) {
    return malformed("no method in the request line");
  }
  const std::string_view method = line.substr(0, first_space);
  for (const char c : method) {
    if (!is_tchar(c)) return malformed("the method is not a token");
  }
  const auto second_space = line.find(' ', first_space + 1);
  if (second_space == std::string_view::npos) return malformed("no HTTP version");
  const std::string_view target = line.substr(first_space + 1, second_space - first_space - 1);
  const std::string_view version = line.substr(second_space + 1);
  if (version != "HTTP/1.1" && version != "HTTP/1.0") return malformed("not HTTP/1.0 or HTTP/1.1");
  // RFC 9112 §3.2.1: origin-form, an absolute path and an optional query.
  if (target.empty() || target.front() != '/') return malformed("the target is not a path");
  for (const char c : target) {
    if (!is_target_char(c)) return malformed("the target has a character outside US-ASCII");
  }
  RequestHead head;
  head.status = RequestHead::Status::complete;
  head.method = std::string(method);
  head.path = std::string(target.substr(0, target.find('?')));
  return head;
}

}  // namespace stokend::http
