// Free space on the spool's file system, and what "out of space" means.
//
// Accepting a message the spool cannot hold only to fail it at the end of
// DATA wastes the client's transfer; RFC 3463 has a code for the case,
// 4.3.1 "Mail system full", and RFC 5321 §4.2.2 the reply 452 "Requested
// action not taken: insufficient system storage". Like Postfix's
// queue_minfree, the server refuses at MAIL while the spool's file system has
// less than a reserve free, so that what is already accepted can still be
// delivered: every delivery appends a state record, and only a removal lets a
// segment go (spool.h). The reserve defaults to one and a half times the
// largest message (Postfix's advice for queue_minfree), so that one message
// accepted just above the reserve still fits with room to spare.
//
// FreeSpaceMonitor answers from a statvfs(2) result cached for a short
// interval, so that a MAIL command costs no system call most of the time
// and a busy server calls statvfs at most a few times per second. A write
// that failed for space (report_out_of_space) refreshes at once, so the next
// MAIL sees the full disk without waiting for the cache to expire. Space
// coming back (deliveries removing messages, an operator deleting files) is
// noticed at the next refresh: no restart needed.
//
// Contract: one thread (the event loop). statvfs on a local file system
// returns in microseconds; the cache keeps it off the per-command path.
#pragma once

#include <chrono>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <optional>
#include <system_error>

namespace stokend::queue {

// ENOSPC or EDQUOT: the write failed for lack of space (or quota), a
// condition that passes once space is freed, unlike an I/O error.
bool is_out_of_space(const std::error_code& error);

class FreeSpaceMonitor {
 public:
  // Bytes available to this (unprivileged or not) process on the file system
  // of a path, or an error.
  struct Measurement {
    std::uint64_t available = 0;
    std::error_code error;
  };
  using Measure = std::function<Measurement(const std::filesystem::path&)>;
  using Clock = std::function<std::chrono::steady_clock::time_point()>;

  // reserve: refuse new mail while less than this is free (0: no reserve,
  // only a declared size larger than what is free is refused). Logging:
  // whether going under the reserve and back is logged (the session's
  // monitor), or not (the spool's own, for compaction). measure and clock
  // default to statvfs and steady_clock; tests substitute their own.
  enum class Logging { changes, quiet };
  FreeSpaceMonitor(std::filesystem::path path, std::uint64_t reserve,
                   std::chrono::milliseconds refresh_interval, Logging logging = Logging::changes,
                   Measure measure = {}, Clock clock = {});

  struct Verdict {
    bool enough = true;           // at least reserve + incoming bytes free
    std::uint64_t available = 0;  // as last measured
  };
  // Whether a message of incoming bytes (0 when unknown) may be accepted.
  // A file system whose free space cannot be measured is not refused here:
  // the write itself then tells.
  Verdict check(std::uint64_t incoming = 0);

  // A spool write failed for space: measure again at the next check.
  void report_out_of_space();

  std::uint64_t reserve() const { return reserve_; }

 private:
  void refresh();

  std::filesystem::path path_;
  std::uint64_t reserve_;
  std::chrono::milliseconds refresh_interval_;
  Logging logging_;
  Measure measure_;
  Clock clock_;
  std::optional<std::chrono::steady_clock::time_point> measured_at_;
  Measurement last_;
  bool was_short_ = false;  // for one log line per change, not per command
};

// statvfs(2): f_bavail * f_frsize, the space an unprivileged writer may use.
FreeSpaceMonitor::Measurement measure_free_space(const std::filesystem::path& path);

}  // namespace stokend::queue
