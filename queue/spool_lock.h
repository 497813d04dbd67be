// The spool lock: one process at a time reads or changes a spool.
//
// A second stokend started on the same spool (the same config, by mistake or
// by a supervisor that did not notice the first) must not run recovery on
// it: recovery cuts torn tails, quarantines files and starts a new segment,
// all of which would pull the floor from under the running daemon, whose
// next acknowledged message would then be written into a file nobody can
// find again. So the daemon takes this lock before anything in the spool is
// read or changed, and holds it until it exits.
//
// The lock is flock(2) LOCK_EX on the file "stokend.lock" inside the spool
// folder. flock belongs to the open file description, so the kernel drops
// it when the holder exits in any way (kill -9 included): a stale lock file
// never blocks a restart. The holder writes its PID into the file so that a
// refused start can name it; the PID is for people only, the flock is the
// lock. Writing it may fail on a full file system (spool.h: start on a full
// disk); the lock still holds, and a refused start then says the PID is
// unknown.
//
// Processes that write segments take the lock: the daemon. stokenctl never
// opens segments; it changes the queue through the daemon's control socket
// (mta/control/), and the token store it may write is SQLite, which locks
// for itself.
//
// Contract: acquire() either holds the lock and returns an empty string, or
// holds nothing and returns one line saying why, naming the holder's PID when
// another process has it. The lock is released when the object is destroyed.
#pragma once

#include <filesystem>
#include <string>

#include "common/unique_fd.h"

namespace stokend::queue {

inline constexpr const char* spool_lock_file_name = "stokend.lock";

class SpoolLock {
 public:
  SpoolLock() = default;

  // Takes the lock on the spool folder (which must exist), without waiting.
  std::string acquire(const std::filesystem::path& spool_directory);

  bool held() const { return file_.valid(); }

 private:
  UniqueFd file_;
};

}  // namespace stokend::queue
