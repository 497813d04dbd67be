// Free space on the spool's file system: see free_space.h.
#include "queue/free_space.h"

#include <spdlog/spdlog.h>
#include <sys/statvfs.h>

#include <cerrno>

namespace stokend::queue {

bool is_out_of_space(const std::error_code& error) {
  if (error.category() != std::system_category() && error.category() != std::generic_category()) {
    return false;
  }
  return error.value() == ENOSPC || error.value() == EDQUOT;
}

FreeSpaceMonitor::Measurement measure_free_space(const std::filesystem::path& path) {
  struct statvfs status {};
  if (::statvfs(path.c_str(), &status) != 0) return {0, {errno, std::system_category()}};
  return {static_cast<std::uint64_t>(status.f_bavail) * status.f_frsize, {}};
}

FreeSpaceMonitor::FreeSpaceMonitor(std::filesystem::path path, std::uint64_t reserve,
                                   std::chrono::milliseconds refresh_interval, Logging logging,
                                   Measure measure, Clock clock)
    : path_(std::move(path)),
      reserve_(reserve),
      refresh_interval_(refresh_interval),
      logging_(logging),
      measure_(measure ? std::move(measure) : Measure(measure_free_space)),
      clock_(clock ? std::move(clock) : Clock([] { return std::chrono::steady_clock::now(); })) {}

void FreeSpaceMonitor::report_out_of_space() { measured_at_.reset(); }

void FreeSpaceMonitor::refresh() {
  const auto now = clock_();
  if (measured_at_ && now - *measured_at_ < refresh_interval_) return;
  measured_at_ = now;
  const Measurement previous = last_;
  last_ = measure_(path_);
  if (logging_ == Logging::quiet) return;
  if (last_.error) {
    if (!previous.error) {
      spdlog::warn("spool: cannot measure free space on {}: {}", path_.string(),
                   last_.error.message());
    }
    return;
  }
  const bool short_now = last_.available < reserve_;
  if (short_now && !was_short_) {
    spdlog::warn(
        "spool: {} bytes free on the file system of {}, under the reserve of {}: new mail is "
        "refused with 452 4.3.1 until space returns",
        last_.available, path_.string(), reserve_);
  } else if (!short_now && was_short_) {
    spdlog::info("spool: {} bytes free on the file system of {} (reserve {}): accepting mail again",
                 last_.available, path_.string(), reserve_);
  }
  was_short_ = short_now;
}

FreeSpaceMonitor::Verdict FreeSpaceMonitor::check(std::uint64_t incoming) {
  refresh();
  if (last_.error) return {true, 0};
  // Written so that a huge declared size cannot wrap around.
  const bool enough = last_.available >= reserve_ && last_.available - reserve_ >= incoming;
  return {enough, last_.available};
}

}  // namespace stokend::queue
