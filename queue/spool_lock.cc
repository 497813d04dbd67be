// The spool lock: see spool_lock.h.
#include "queue/spool_lock.h"

#include <fcntl.h>
#include <sys/file.h>
#include <unistd.h>

#include <cerrno>
#include <charconv>
#include <cstring>
#include <string_view>
#include <system_error>

namespace stokend::queue {
namespace {

std::string error_text(int error) {
  return std::error_code(error, std::system_category()).message();
}

// The PID the holder wrote, or "unknown" (not written yet, or no space).
std::string holder_pid(int descriptor) {
  char buffer[32] = {};
  const ssize_t count = ::pread(descriptor, buffer, sizeof buffer - 1, 0);
  if (count <= 0) return "unknown";
  std::string_view text(buffer, static_cast<std::size_t>(count));
  while (!text.empty() && (text.back() == '\n' || text.back() == ' ')) text.remove_suffix(1);
  long pid = 0;
  const auto [end, status] = std::from_chars(text.data(), text.data() + text.size(), pid);
  if (text.empty() || status != std::errc() || end != text.data() + text.size() || pid <= 0) {
    return "unknown";
  }
  return std::to_string(pid);
}

}  // namespace

std::string SpoolLock::acquire(const std::filesystem::path& spool_directory) {
  const std::filesystem::path path = spool_directory / spool_lock_file_name;
  UniqueFd file(::open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600));
  if (!file) return "cannot open the spool lock file " + path.string() + ": " + error_text(errno);
  int result;
  do {
    result = ::flock(file.get(), LOCK_EX | LOCK_NB);
  } while (result != 0 && errno == EINTR);
  if (result != 0) {
    if (errno == EWOULDBLOCK) {
      return "spool " + spool_directory.string() + " is in use by another stokend (PID " +
             holder_pid(file.get()) + ", lock file " + path.string() + ")";
    }
    return "cannot lock the spool lock file " + path.string() + ": " + error_text(errno);
  }
  // Our PID, for a refused start to name. Written in place and then cut to
  // length, so that an existing file needs no new block: on a full file
  // system this still works as long as the old contents were as long.
  const std::string pid = std::to_string(::getpid()) + "\n";
  // A failed cut leaves nothing worse than an unknown PID; the lock holds.
  const bool written =
      ::pwrite(file.get(), pid.data(), pid.size(), 0) == static_cast<ssize_t>(pid.size());
  // Nothing stale may remain either way: a longer old PID's tail, or an old
  // PID naming the wrong process.
  if (::ftruncate(file.get(), written ? static_cast<off_t>(pid.size()) : 0) != 0) {
    // Nothing more to do (see above).
  }
  file_ = std::move(file);
  return {};
}

}  // namespace stokend::queue
