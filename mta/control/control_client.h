// stokenctl's side of the control protocol (control_protocol.h): one
// request, one answer, over the daemon's control socket.
//
// Contract: blocking. Every wait (connecting, sending, each receive) gives
// up after `timeout`. Errors are texts meant for the administrator; a
// daemon that is not running says so.
#pragma once

#include <chrono>
#include <filesystem>
#include <optional>
#include <string>

#include "mta/control/control_protocol.h"

namespace stokend::control {

inline constexpr std::chrono::milliseconds default_client_timeout = std::chrono::seconds(30);

std::optional<Answer> ask_daemon(const std::filesystem::path& socket_path, const Request& request,
                                 std::string& error,
                                 std::chrono::milliseconds timeout = default_client_timeout);

}  // namespace stokend::control
