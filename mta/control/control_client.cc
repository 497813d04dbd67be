// See control_client.h.
#include "mta/control/control_client.h"

#include <sys/socket.h>

#include <cerrno>
#include <cstring>

#include "mta/control/control_socket.h"

namespace stokend::control {
namespace {

std::string connect_error(const std::filesystem::path& path, int error_number) {
  std::string text =
      "cannot connect to stokend at " + path.string() + ": " + std::strerror(error_number);
  switch (error_number) {
    case ENOENT:
    case ECONNREFUSED:
      return text + " — is the daemon running?";
    case EACCES:
    case EPERM:
      return text + " — run stokenctl as the daemon's user or as root";
    case EAGAIN:
      return text + " — the daemon is not accepting control connections";
    default:
      return text;
  }
}

bool send_all(int socket, std::string_view data) {
  while (!data.empty()) {
    const ssize_t sent = ::send(socket, data.data(), data.size(), MSG_NOSIGNAL);
    if (sent < 0 && errno == EINTR) continue;
    if (sent <= 0) return false;
    data.remove_prefix(static_cast<std::size_t>(sent));
  }
  return true;
}

// Reads until the daemon closes the connection. Nothing on a receive error
// or timeout (errno says which).
std::optional<std::string> receive_all(int socket) {
  std::string received;
  char buffer[16 * 1024];
  for (;;) {
    const ssize_t count = ::recv(socket, buffer, sizeof buffer, 0);
    if (count < 0 && errno == EINTR) continue;
    // A daemon that closes without reading our request (a refusal) makes
    // the kernel report a reset once its answer has been read.
    if (count < 0 && errno == ECONNRESET && !received.empty()) return received;
    if (count < 0) return std::nullopt;
    if (count == 0) return received;
    received.append(buffer, static_cast<std::size_t>(count));
  }
}

std::string failure_text(std::string_view what, int error_number) {
  if (error_number == EAGAIN || error_number == EWOULDBLOCK) {
    return std::string(what) + ": the daemon did not answer in time";
  }
  return std::string(what) + ": " + std::strerror(error_number);
}

}  // namespace

std::optional<Answer> ask_daemon(const std::filesystem::path& socket_path, const Request& request,
                                 std::string& error, std::chrono::milliseconds timeout) {
  int error_number = 0;
  const UniqueFd socket = connect_to_control_socket(socket_path, timeout, error_number);
  if (!socket) {
    error = connect_error(socket_path, error_number);
    return std::nullopt;
  }
  // A daemon that refuses us (busy, not allowed) answers and closes without
  // reading, so a failed send still leaves its answer to read.
  const bool sent = send_all(socket.get(), format_request(request));
  const int send_error = errno;
  const std::optional<std::string> wire = receive_all(socket.get());
  if (!sent && (!wire || wire->empty())) {
    error = failure_text("cannot send the request to stokend", send_error);
    return std::nullopt;
  }
  if (!wire) {
    error = failure_text("cannot read stokend's answer", errno);
    return std::nullopt;
  }
  return decode_answer(*wire, error);
}

}  // namespace stokend::control
