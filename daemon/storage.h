// The daemon's storage: the spool (opened, recovered, its free space
// watched), the queue's settings, and the built-in Maildir's housekeeping.
//
// Contract: recover_spool() logs what it found (info) or why the spool
// cannot be used (critical, and nullopt); run_daemon() then exits with
// status 1.
#pragma once

#include <functional>
#include <memory>
#include <optional>

#include "mta/config/config.h"
#include "mta/store/maildir_store.h"
#include "queue/free_space.h"
#include "queue/queue_manager.h"
#include "queue/spool.h"

namespace stokend::wiring {

queue::SpoolOptions spool_options(const Config& config);

// Recovers what the spool holds, before anything new is accepted.
std::optional<queue::RecoveryReport> recover_spool(const Config& config, queue::Spool& spool);

queue::QueueSettings queue_settings(const Config& config);

// Free space on the spool's file system, checked at MAIL (452 4.3.1 under
// queue.min_free_space).
std::unique_ptr<queue::FreeSpaceMonitor> watch_spool_space(const Config& config);

// The built-in Maildir store with the configured owner and modes; null
// (logged) when they cannot be applied.
std::unique_ptr<store::MaildirStore> build_mailstore(const Config& config);

// Files a crash left in Maildir tmp/ folders (mta/store/maildir_cleanup.h):
// our own unfinished deliveries at once, other files by age. Called on the
// loop thread, with the spool ours and before the queue delivers anything;
// later the periodic maildir_tmp_cleanup() removes stale files by age only.
void remove_maildir_leftovers_at_start(const Config& config);

// Removes stale files from the Maildir tmp/ folders by age (on a worker
// thread: periodic_job.h).
std::function<void()> maildir_tmp_cleanup(const Config& config);

}  // namespace stokend::wiring
