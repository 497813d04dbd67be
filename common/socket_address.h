// SocketAddress: an IPv4 or IPv6 literal and a port as the sockaddr that
// bind() and connect() take, for the listeners (SMTP, metrics) that bind
// a configured address.
//
// Contract: socket_address() accepts what inet_pton() reads, IPv6 when the
// text holds a ':' (without brackets), IPv4 otherwise; nothing otherwise.
#pragma once

#include <sys/socket.h>

#include <cstdint>
#include <optional>
#include <string>

namespace stokend {

struct SocketAddress {
  sockaddr_storage storage{};
  socklen_t length = 0;

  sockaddr* get() { return reinterpret_cast<sockaddr*>(&storage); }
};

std::optional<SocketAddress> socket_address(const std::string& address, std::uint16_t port);

}  // namespace stokend
