// See control_socket.h.
#include "mta/control/control_socket.h"

#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <system_error>

namespace stokend::control {
namespace {

constexpr int listen_backlog = 16;

// Fills address; false when the path does not fit sun_path.
bool make_address(const std::filesystem::path& path, sockaddr_un& address) {
  const std::string& text = path.native();
  address = {};
  address.sun_family = AF_UNIX;
  if (text.empty() || text.size() >= sizeof address.sun_path) return false;
  std::memcpy(address.sun_path, text.c_str(), text.size() + 1);
  return true;
}

std::string describe(const std::filesystem::path& path, std::string_view what, int error_number) {
  return "control socket " + path.string() + ": " + std::string(what) + ": " +
         std::strerror(error_number);
}

// Whether a connect to the socket file is refused: what a daemon that died
// leaves behind. Non-blocking, so a live daemon with a full backlog cannot
// hang the start. Returns 0 (refused: stale) or why it is not stale.
int why_not_stale(const sockaddr_un& address) {
  UniqueFd probe(::socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0));
  if (!probe) return errno;
  if (::connect(probe.get(), reinterpret_cast<const sockaddr*>(&address), sizeof address) == 0) {
    return EADDRINUSE;
  }
  if (errno == ECONNREFUSED) return 0;
  return errno == EAGAIN ? EADDRINUSE : errno;
}

}  // namespace

UniqueFd ControlSocketFile::listen(const std::filesystem::path& path, std::string& error) {
  sockaddr_un address;
  if (!make_address(path, address)) {
    error = "control socket " + path.string() + ": path too long for a unix socket (at most " +
            std::to_string(sizeof address.sun_path - 1) + " bytes)";
    return {};
  }
  if (path.has_parent_path()) {
    std::error_code failure;
    std::filesystem::create_directories(path.parent_path(), failure);
    if (failure) {
      error =
          "control socket " + path.string() + ": cannot create its folder: " + failure.message();
      return {};
    }
  }
  struct stat existing {};
  if (::lstat(path.c_str(), &existing) == 0) {
    if (!S_ISSOCK(existing.st_mode)) {
      error = "control socket " + path.string() + ": exists and is not a socket";
      return {};
    }
    const int reason = why_not_stale(address);
    if (reason == EADDRINUSE) {
      error = "control socket " + path.string() + ": another stokend is listening on it";
      return {};
    }
    if (reason != 0) {
      error = describe(path, "cannot check the existing socket", reason);
      return {};
    }
    if (::unlink(path.c_str()) != 0 && errno != ENOENT) {
      error = describe(path, "cannot remove the stale socket", errno);
      return {};
    }
  }
  UniqueFd socket(::socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0));
  if (!socket) {
    error = describe(path, "socket", errno);
    return {};
  }
  if (::bind(socket.get(), reinterpret_cast<const sockaddr*>(&address), sizeof address) != 0) {
    error = describe(path, "bind", errno);
    return {};
  }
  path_ = path;
  struct stat created {};
  if (::stat(path.c_str(), &created) != 0) {
    error = describe(path, "stat", errno);
    ::unlink(path.c_str());
    return {};
  }
  identity_ = std::pair(created.st_dev, created.st_ino);
  if (::chmod(path.c_str(), S_IRUSR | S_IWUSR) != 0) {
    error = describe(path, "chmod", errno);
    remove();
    return {};
  }
  if (::listen(socket.get(), listen_backlog) != 0) {
    error = describe(path, "listen", errno);
    remove();
    return {};
  }
  return socket;
}

void ControlSocketFile::remove() {
  if (!identity_) return;
  struct stat current {};
  if (::lstat(path_.c_str(), &current) == 0 &&
      std::pair(current.st_dev, current.st_ino) == *identity_) {
    ::unlink(path_.c_str());
  }
  identity_.reset();
}

UniqueFd connect_to_control_socket(const std::filesystem::path& path,
                                   std::chrono::milliseconds timeout, int& error_number) {
  sockaddr_un address;
  if (!make_address(path, address)) {
    error_number = ENAMETOOLONG;
    return {};
  }
  UniqueFd socket(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
  if (!socket) {
    error_number = errno;
    return {};
  }
  // On a unix socket the send timeout also bounds a connect that waits for
  // room in the daemon's backlog.
  const auto microseconds = std::chrono::duration_cast<std::chrono::microseconds>(timeout).count();
  const timeval limit{static_cast<time_t>(microseconds / 1'000'000),
                      static_cast<suseconds_t>(microseconds % 1'000'000)};
  ::setsockopt(socket.get(), SOL_SOCKET, SO_SNDTIMEO, &limit, sizeof limit);
  ::setsockopt(socket.get(), SOL_SOCKET, SO_RCVTIMEO, &limit, sizeof limit);
  int result;
  do {
    result = ::connect(socket.get(), reinterpret_cast<const sockaddr*>(&address), sizeof address);
  } while (result != 0 && errno == EINTR);
  if (result != 0) {
    error_number = errno;
    return {};
  }
  return socket;
}

std::optional<uid_t> peer_user_id(int socket) {
  ucred credentials{};
  socklen_t length = sizeof credentials;
  if (::getsockopt(socket, SOL_SOCKET, SO_PEERCRED, &credentials, &length) != 0) {
    return std::nullopt;
  }
  return credentials.uid;
}

}  // namespace stokend::control
