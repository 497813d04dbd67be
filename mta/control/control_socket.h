// The control socket file: a unix domain stream socket that only the
// daemon's user (and root) may use.
//
// Contract: listen_on_control_socket() creates the socket file with mode
// 0600 before it accepts anything (bind, chmod, then listen: a connect in
// between is refused), creating missing parent folders. A socket file left
// behind by a daemon that died is replaced; one that a live daemon still
// answers on, or a path that is not a socket, is an error. The file is
// removed only if it is still the one created (a successor may have
// replaced it).
#pragma once

#include <sys/types.h>

#include <chrono>
#include <filesystem>
#include <optional>
#include <string>

#include "common/unique_fd.h"

namespace stokend::control {

class ControlSocketFile {
 public:
  ControlSocketFile() = default;
  ~ControlSocketFile() { remove(); }
  ControlSocketFile(const ControlSocketFile&) = delete;
  ControlSocketFile& operator=(const ControlSocketFile&) = delete;

  // Called once. Returns the listening socket (non-blocking,
  // close-on-exec), or an invalid one with error set.
  UniqueFd listen(const std::filesystem::path& path, std::string& error);
  // Unlinks the file if it is still ours.
  void remove();

 private:
  std::filesystem::path path_;
  std::optional<std::pair<dev_t, ino_t>> identity_;
};

// Connects to the socket. The descriptor is blocking, and connecting,
// sending and each receive give up after `timeout` (EAGAIN). On failure
// returns an invalid descriptor and the errno in error_number.
UniqueFd connect_to_control_socket(const std::filesystem::path& path,
                                   std::chrono::milliseconds timeout, int& error_number);

// The user id the peer of a connected unix socket runs as; nothing when the
// kernel cannot tell.
std::optional<uid_t> peer_user_id(int socket);

}  // namespace stokend::control
