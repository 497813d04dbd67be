// The daemon: wires configuration, users, mailstore, TLS, worker threads and
// listeners together, runs the event loop, and stops cleanly on SIGTERM or
// SIGINT (no new connections; sessions finish their current work; at most
// a few seconds).
#pragma once

#include "mta/config/config.h"

namespace stokend {

// Returns the process exit code.
int run_daemon(const Config& config);

}  // namespace stokend
