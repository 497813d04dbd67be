// See service_notify.h.
#include "daemon/service_notify.h"

#include <spdlog/spdlog.h>
#include <sys/socket.h>
#include <sys/un.h>

#include <cerrno>
#include <cstddef>
#include <cstdlib>
#include <cstring>
#include <ctime>

#include "common/unique_fd.h"

namespace stokend::wiring {

std::string notify_service_manager(std::string_view state) {
  const char* path = std::getenv("NOTIFY_SOCKET");
  if (path == nullptr || path[0] == '\0') return {};
  const std::size_t length = std::strlen(path);
  sockaddr_un address{};
  address.sun_family = AF_UNIX;
  // Only absolute paths and abstract names: anything else is not a socket
  // a service manager made for us.
  if ((path[0] != '/' && path[0] != '@') || length >= sizeof address.sun_path) {
    return "NOTIFY_SOCKET is neither an absolute path nor an abstract name";
  }
  std::memcpy(address.sun_path, path, length);
  // Abstract namespace: a leading NUL instead of '@', and the address is
  // exactly as long as the name (no terminating NUL counted).
  if (path[0] == '@') address.sun_path[0] = '\0';
  const auto address_length =
      static_cast<socklen_t>(offsetof(sockaddr_un, sun_path) + length + (path[0] == '@' ? 0 : 1));

  const UniqueFd socket(::socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0));
  if (!socket) return std::string("socket: ") + std::strerror(errno);
  ssize_t sent;
  do {
    sent = ::sendto(socket.get(), state.data(), state.size(), MSG_NOSIGNAL | MSG_DONTWAIT,
                    reinterpret_cast<const sockaddr*>(&address), address_length);
  } while (sent < 0 && errno == EINTR);
  if (sent < 0) return std::string("sendto ") + path + ": " + std::strerror(errno);
  return {};
}

namespace {

void send_state(std::string_view state) {
  if (const std::string error = notify_service_manager(state); !error.empty()) {
    spdlog::debug("service manager notification not sent: {}", error);
  }
}

}  // namespace

void notify_ready() { send_state("READY=1"); }

void notify_reloading() {
  timespec now{};
  ::clock_gettime(CLOCK_MONOTONIC, &now);
  const long long microseconds = static_cast<long long>(now.tv_sec) * 1000000 + now.tv_nsec / 1000;
  send_state("RELOADING=1\nMONOTONIC_USEC=" + std::to_string(microseconds));
}

void notify_stopping() { send_state("STOPPING=1"); }

}  // namespace stokend::wiring
