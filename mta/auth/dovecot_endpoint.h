// DovecotEndpoint: where one of Dovecot's auth listeners is, as the `auth:`
// settings write it: "unix:PATH" (a unix socket, the usual
// /run/dovecot/auth-client or auth-userdb) or "inet:HOST:PORT" (an IPv4
// literal, or an IPv6 literal in brackets, and a port: an inet_listener).
//
// Contract: parse_dovecot_endpoint() is pure and never throws; it returns
// the endpoint, or nullopt and the reason in error. describe() writes the
// endpoint back as it was parsed (IPv6 in brackets).
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace stokend::auth {

struct DovecotEndpoint {
  std::string unix_path;  // when not empty, host and port are not used
  std::string host;       // an IP literal, without brackets
  std::uint16_t port = 0;

  bool is_unix_socket() const { return !unix_path.empty(); }
  std::string describe() const;
  bool operator==(const DovecotEndpoint&) const = default;
};

std::optional<DovecotEndpoint> parse_dovecot_endpoint(std::string_view text, std::string& error);

}  // namespace stokend::auth
