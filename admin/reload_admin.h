// stokenctl's `reload`: asks the running daemon, over its control socket,
// to read its configuration, users file and TLS certificate again (the same
// reload as SIGHUP: daemon/reload.h).
//
// Contract: as queue_admin.h. Prints "reloaded" (and the changed settings
// that wait for a restart) to `out` and returns 0; prints "reload refused:
// REASON" (the daemon's, FILE:LINE:COL for a configuration error) to `err`
// and returns 1 when the daemon refused, or when it cannot be asked.
#pragma once

#include <ostream>

#include "mta/config/config.h"

namespace stokend::admin {

int run_reload_command(const Config& config, std::ostream& out, std::ostream& err);

}  // namespace stokend::admin
