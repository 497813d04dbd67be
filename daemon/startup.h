// The first steps of a start, before any component exists: logging, the
// process-wide library setup, the data folders, the spool lock and the
// users file.
//
// Contract: each step that can fail logs why (critical) and returns false
// or nothing; run_daemon() then exits with status 1, having changed nothing
// a later start would trip over.
#pragma once

#include <memory>

#include "common/event_handles.h"
#include "mta/addresses/alias_file.h"
#include "mta/config/config.h"
#include "mta/users.h"
#include "queue/spool_lock.h"

namespace stokend::wiring {

// The "stokend" logger and its services' (common/service_log.h), at
// log_level: log_file and, with log_syslog, the system logger; standard
// error when neither is set (lines shaped as daemon/log_pattern.h says).
// False, with a line on standard error, when the log cannot be opened.
bool setup_logging(const Config& config);

// libsodium, libevent's thread support (worker threads hand completions back
// with event_active()), SIGPIPE ignored (a peer closing is an error return,
// not a signal), and SIGHUP, SIGUSR1 and SIGUSR2 ignored until the loop
// watches them.
bool prepare_process();

// spool_directory and maildir_root, created durably if missing.
bool make_data_directories(const Config& config);

// One daemon per spool (queue/spool_lock.h): taken before anything reads or
// changes the spool, held by the caller until it returns. A second start
// stops here, touching nothing.
bool lock_spool(const Config& config, queue::SpoolLock& lock);

// The event loop every component runs on; null when it cannot be made.
EventBasePtr make_event_base();

// The users file, loaded; null when it cannot be read.
std::unique_ptr<UserDirectory> load_users(const Config& config);

// The aliases file (`aliases`), loaded; null when none is configured, or
// when it cannot be read or has a bad line (then `failed` is set).
std::unique_ptr<addresses::AliasFile> load_aliases(const Config& config, bool& failed);

}  // namespace stokend::wiring
