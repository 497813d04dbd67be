// See dovecot_endpoint.h.
#include "mta/auth/dovecot_endpoint.h"

#include <sys/un.h>

#include "common/ascii.h"
#include "common/socket_address.h"

namespace stokend::auth {

std::string DovecotEndpoint::describe() const {
  if (is_unix_socket()) return "unix:" + unix_path;
  const bool v6 = host.find(':') != std::string::npos;
  return "inet:" + (v6 ? "[" + host + "]" : host) + ":" + std::to_string(port);
}

std::optional<DovecotEndpoint> parse_dovecot_endpoint(std::string_view text, std::string& error) {
  DovecotEndpoint endpoint;
  if (text.starts_with("unix:")) {
    endpoint.unix_path = std::string(text.substr(5));
    if (endpoint.unix_path.empty()) {
      error = "unix: needs the socket's path, e.g. unix:/run/dovecot/auth-client";
      return std::nullopt;
    }
    // sun_path holds the name and its terminating NUL.
    if (endpoint.unix_path.size() >= sizeof(sockaddr_un{}.sun_path)) {
      error = "socket path longer than " + std::to_string(sizeof(sockaddr_un{}.sun_path) - 1) +
              " octets";
      return std::nullopt;
    }
    if (endpoint.unix_path.find('\0') != std::string::npos) {
      error = "socket path contains a NUL octet";
      return std::nullopt;
    }
    return endpoint;
  }
  if (!text.starts_with("inet:")) {
    error = "expected unix:PATH or inet:HOST:PORT";
    return std::nullopt;
  }
  std::string_view rest = text.substr(5);
  const std::size_t colon = rest.rfind(':');
  if (colon == std::string_view::npos) {
    error = "inet: needs HOST:PORT, e.g. inet:127.0.0.1:12345";
    return std::nullopt;
  }
  std::string_view host = rest.substr(0, colon);
  const std::string_view port = rest.substr(colon + 1);
  if (host.size() >= 2 && host.front() == '[' && host.back() == ']') {
    host = host.substr(1, host.size() - 2);
    if (host.find(':') == std::string_view::npos) {
      error = "brackets are for an IPv6 address";
      return std::nullopt;
    }
  } else if (host.find(':') != std::string_view::npos) {
    error = "an IPv6 address goes in brackets: inet:[::1]:PORT";
    return std::nullopt;
  }
  const auto number = parse_decimal(port);
  if (port.empty() || port.size() > 5 || !number || *number == 0 || *number > 65535) {
    error = "port must be a number from 1 to 65535";
    return std::nullopt;
  }
  endpoint.host = std::string(host);
  endpoint.port = static_cast<std::uint16_t>(*number);
  if (!socket_address(endpoint.host, endpoint.port)) {
    error = "host must be an IP address (no host names: the lookup would block)";
    return std::nullopt;
  }
  return endpoint;
}

}  // namespace stokend::auth
