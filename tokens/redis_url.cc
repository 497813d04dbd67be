// See redis_url.h.
#include "tokens/redis_url.h"

#include <charconv>

namespace stokend::tokens {
namespace {

constexpr std::size_t max_url_length = 1024;
constexpr int max_database = 9999;
constexpr std::uint16_t default_port = 6379;

// A decimal number of at most `digits` digits in [0, max].
bool parse_number(std::string_view text, long max, long& value) {
  if (text.empty() || text.size() > 5) return false;
  for (char c : text) {
    if (c < '0' || c > '9') return false;
  }
  const auto [end, error] = std::from_chars(text.data(), text.data() + text.size(), value);
  return error == std::errc() && end == text.data() + text.size() && value <= max;
}

bool host_character(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' ||
         c == '.' || c == '_';
}

RedisUrlParse failure(std::string error) { return {{}, std::move(error)}; }

}  // namespace

std::string RedisEndpoint::describe() const {
  if (unix_socket()) return "unix:" + socket_path;
  const bool ipv6 = host.find(':') != std::string::npos;
  return "redis://" + (ipv6 ? "[" + host + "]" : host) + ":" + std::to_string(port) + "/" +
         std::to_string(database);
}

RedisUrlParse parse_redis_url(std::string_view url) {
  if (url.empty()) return failure("empty Redis URL");
  if (url.size() > max_url_length) return failure("Redis URL longer than 1024 characters");
  for (char c : url) {
    if (static_cast<unsigned char>(c) <= ' ' || c == 0x7f) {
      return failure("Redis URL contains a space or a control character");
    }
  }
  RedisUrlParse result;
  constexpr std::string_view unix_scheme = "unix:";
  constexpr std::string_view tcp_scheme = "redis://";
  if (url.substr(0, unix_scheme.size()) == unix_scheme) {
    std::string_view path = url.substr(unix_scheme.size());
    // unix:///run/redis.sock is a common spelling of the same thing; any
    // run of leading slashes names the root once (so describe() reads back).
    while (path.size() > 1 && path[0] == '/' && path[1] == '/') path.remove_prefix(1);
    if (path.empty() || path.front() != '/') {
      return failure("unix: needs an absolute socket path (unix:/run/redis/redis.sock)");
    }
    result.endpoint.socket_path = std::string(path);
    return result;
  }
  if (url.substr(0, tcp_scheme.size()) != tcp_scheme) {
    return failure("Redis URL must start with redis:// or unix: (rediss:// is not supported)");
  }
  std::string_view rest = url.substr(tcp_scheme.size());
  const std::size_t slash = rest.find('/');
  std::string_view authority = rest.substr(0, slash);
  if (authority.find('@') != std::string_view::npos) {
    return failure("no user or password in the Redis URL: use password_file");
  }
  if (slash != std::string_view::npos) {
    const std::string_view database = rest.substr(slash + 1);
    long value = 0;
    if (!database.empty()) {
      if (!parse_number(database, max_database, value)) {
        return failure("Redis database must be a number from 0 to 9999, got '" +
                       std::string(database) + "'");
      }
    }
    result.endpoint.database = static_cast<int>(value);
  }
  std::string_view host = authority;
  std::string_view port;
  if (!authority.empty() && authority.front() == '[') {
    const std::size_t close = authority.find(']');
    if (close == std::string_view::npos) return failure("unclosed '[' in the Redis URL's host");
    host = authority.substr(1, close - 1);
    const std::string_view after = authority.substr(close + 1);
    if (!after.empty()) {
      if (after.front() != ':') return failure("unexpected text after ']' in the Redis URL");
      port = after.substr(1);
      if (port.empty()) return failure("empty port in the Redis URL");
    }
    if (host.empty()) return failure("empty IPv6 address in the Redis URL");
    // RFC 3986 §3.2.2: brackets hold an IPv6 literal, which has colons and
    // is at most 45 characters (with an embedded IPv4 address); anything
    // else would not read back as the same host.
    if (host.find(':') == std::string_view::npos || host.size() > 45) {
      return failure("invalid IPv6 address in the Redis URL");
    }
    for (char c : host) {
      const bool hex = (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F');
      if (!hex && c != ':' && c != '.') return failure("invalid IPv6 address in the Redis URL");
    }
  } else {
    const std::size_t colon = authority.rfind(':');
    if (colon != std::string_view::npos) {
      host = authority.substr(0, colon);
      port = authority.substr(colon + 1);
      if (port.empty()) return failure("empty port in the Redis URL");
    }
    if (host.empty()) return failure("no host in the Redis URL");
    if (host.size() > 253) return failure("Redis host name longer than 253 characters");
    for (char c : host) {
      if (!host_character(c)) return failure("invalid character in the Redis URL's host");
    }
  }
  result.endpoint.host = std::string(host);
  result.endpoint.port = default_port;
  if (!port.empty()) {
    long value = 0;
    if (!parse_number(port, 65535, value) || value == 0) {
      return failure("Redis port must be a number from 1 to 65535, got '" + std::string(port) +
                     "'");
    }
    result.endpoint.port = static_cast<std::uint16_t>(value);
  }
  return result;
}

}  // namespace stokend::tokens
