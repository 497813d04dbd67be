// See socket_address.h.
#include "common/socket_address.h"

#include <arpa/inet.h>
#include <netinet/in.h>

namespace stokend {

std::optional<SocketAddress> socket_address(const std::string& address, std::uint16_t port) {
  SocketAddress result;
  if (address.find(':') != std::string::npos) {
    auto* v6 = reinterpret_cast<sockaddr_in6*>(&result.storage);
    v6->sin6_family = AF_INET6;
    v6->sin6_port = htons(port);
    if (inet_pton(AF_INET6, address.c_str(), &v6->sin6_addr) != 1) return std::nullopt;
    result.length = sizeof *v6;
  } else {
    auto* v4 = reinterpret_cast<sockaddr_in*>(&result.storage);
    v4->sin_family = AF_INET;
    v4->sin_port = htons(port);
    if (inet_pton(AF_INET, address.c_str(), &v4->sin_addr) != 1) return std::nullopt;
    result.length = sizeof *v4;
  }
  return result;
}

}  // namespace stokend
