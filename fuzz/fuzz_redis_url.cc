// libFuzzer target for the Redis URL parser (tokens/redis_url.h).
//
// Beyond memory safety (the sanitizers), checks (abort on violation): a
// failure carries an error and no endpoint, a success no error; a TCP
// endpoint has a host, a port and no socket path, a unix one an absolute path
// and no host; describe() of a success parses back to the same endpoint.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string_view>

#include "tokens/redis_url.h"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  using namespace stokend::tokens;
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  const RedisUrlParse parsed = parse_redis_url(text);
  if (!parsed.error.empty()) {
    if (!parsed.endpoint.host.empty() || !parsed.endpoint.socket_path.empty()) std::abort();
    return 0;
  }
  const RedisEndpoint& endpoint = parsed.endpoint;
  if (endpoint.unix_socket()) {
    if (!endpoint.host.empty() || endpoint.port != 0 || endpoint.socket_path.front() != '/') {
      std::abort();
    }
  } else if (endpoint.host.empty() || endpoint.port == 0 || endpoint.database < 0 ||
             endpoint.database > 9999) {
    std::abort();
  }
  const RedisUrlParse again = parse_redis_url(endpoint.describe());
  if (!again.error.empty() || again.endpoint.host != endpoint.host ||
      again.endpoint.port != endpoint.port || again.endpoint.socket_path != endpoint.socket_path ||
      again.endpoint.database != endpoint.database) {
    std::abort();
  }
  return 0;
}
