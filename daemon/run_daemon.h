// The daemon: wires configuration, users, mailstore, TLS, worker threads,
// the queue, outbound delivery, the Submission Token extension and the
// listeners together, runs the event loop, and stops cleanly on SIGTERM or
// SIGINT (no new connections; sessions finish their current work; at most
// a few seconds: shutdown.h).
//
// Started as root with `user:`, it runs as that user from the first file it
// creates and drops root for good once the ports are bound, before the loop
// runs (privileges.h).
//
// Contract: returns the process exit code: 1 when a component cannot be
// built or the privileges are refused (the reason is logged as critical),
// 0 after a clean stop.
#pragma once

#include "mta/config/config.h"

namespace stokend {

int run_daemon(const Config& config);

}  // namespace stokend
