// libFuzzer target for the metrics endpoint's readers of what a client
// sends: the HTTP request head (common/http_request.h) and the
// metrics.listen setting (mta/config/config_reader.h).
//
// Beyond memory safety (the sanitizers), checks (abort on violation): a
// complete head has a non-empty method of token characters and a path that
// starts with '/' and holds no query, control character or space; a
// malformed one says why; the verdict never depends on bytes past the limit
// (a head that is complete within it reads the same with more bytes after
// it); a parsed listen address prints back to an address that parses to the
// same value.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>

#include "common/http_request.h"
#include "mta/config/config_reader.h"

namespace {

using namespace stokend;

void require(bool condition) {
  if (!condition) std::abort();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view input(reinterpret_cast<const char*>(data), size);
  const std::size_t limit = 512;
  const http::RequestHead head = http::parse_request_head(input, limit);
  switch (head.status) {
    case http::RequestHead::Status::complete: {
      require(!head.method.empty());
      require(!head.path.empty() && head.path.front() == '/');
      for (const char c : head.path) require(c > 0x20 && c < 0x7f && c != '?');
      // More bytes after a complete head change nothing.
      const std::string longer = std::string(input) + "GET /other HTTP/1.1\r\n\r\n";
      const http::RequestHead again = http::parse_request_head(longer, limit);
      require(again.status == head.status && again.method == head.method &&
              again.path == head.path);
      break;
    }
    case http::RequestHead::Status::malformed:
      require(!head.error.empty());
      break;
    case http::RequestHead::Status::incomplete:
      require(input.size() < limit);
      break;
    case http::RequestHead::Status::too_large:
      break;
  }

  if (const auto listen = config_reading::parse_listen_address(input)) {
    require(listen->port >= 1);
    const bool v6 = listen->address.find(':') != std::string::npos;
    const std::string printed =
        (v6 ? "[" + listen->address + "]" : listen->address) + ":" + std::to_string(listen->port);
    const auto again = config_reading::parse_listen_address(printed);
    require(again && again->address == listen->address && again->port == listen->port);
  }
  return 0;
}
