// Where a shared Redis token store lives, as the configuration writes it
// (tokens.store.url):
//
//     redis://HOST[:PORT][/DB]     TCP; HOST a name, an IPv4 address or an
//                                  IPv6 address in brackets; PORT 1-65535
//                                  (default 6379); DB 0-9999 (default 0)
//     unix:PATH                    a Unix domain socket (absolute PATH), DB 0
//
// No user or password in the URL: a URL is shown in logs and error
// messages, so the password comes from tokens.store.password_file.
//
// Contract: parse_redis_url never throws; on failure the result's error
// says what is wrong (empty on success). describe() gives the URL back in
// its canonical form, for log lines.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

namespace stokend::tokens {

struct RedisEndpoint {
  std::string host;         // empty for a unix socket
  std::uint16_t port = 0;   // 0 for a unix socket
  std::string socket_path;  // empty for TCP
  int database = 0;

  bool unix_socket() const { return !socket_path.empty(); }
  std::string describe() const;
};

struct RedisUrlParse {
  RedisEndpoint endpoint;
  std::string error;  // empty on success
};

RedisUrlParse parse_redis_url(std::string_view url);

}  // namespace stokend::tokens
