// Durable writes: temporary file, fsync, rename, fsync of the folder.
//
// The order is what makes a crash at any instant safe: the data reaches the
// disk (fsync) before its name becomes visible (rename), and the new name is
// made durable (folder fsync) before the caller acknowledges anything. A crash
// before the rename leaves only a temporary file, which readers ignore.
#include "common/durable_file.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <climits>
#include <vector>

#include "common/unique_fd.h"

namespace stokend::durable {
namespace {

// writev(2) refuses more than IOV_MAX buffers per call; POSIX guarantees 16.
#ifdef IOV_MAX
constexpr std::size_t max_buffers_per_write = IOV_MAX;
#else
constexpr std::size_t max_buffers_per_write = 16;
#endif

std::error_code last_error() { return {errno, std::system_category()}; }

WriteResult failure(std::error_code error, std::string step) {
  return WriteResult{error, std::move(step)};
}

// Writes every byte of parts, resuming after short writes and EINTR.
std::error_code write_parts(int descriptor, std::span<const std::string_view> parts) {
  std::vector<iovec> pending;
  pending.reserve(parts.size());
  for (std::string_view part : parts) {
    if (part.empty()) continue;
    pending.push_back(iovec{const_cast<char*>(part.data()), part.size()});
  }
  std::size_t first = 0;
  while (first < pending.size()) {
    const std::size_t count = std::min(pending.size() - first, max_buffers_per_write);
    const ssize_t written = ::writev(descriptor, &pending[first], static_cast<int>(count));
    if (written < 0) {
      if (errno == EINTR) continue;
      return last_error();
    }
    // A regular file never accepts zero bytes of a non-empty write; treat it
    // as an I/O error rather than spinning.
    if (written == 0) return std::make_error_code(std::errc::io_error);
    auto remaining = static_cast<std::size_t>(written);
    while (remaining > 0) {
      iovec& buffer = pending[first];
      if (remaining >= buffer.iov_len) {
        remaining -= buffer.iov_len;
        ++first;
      } else {
        buffer.iov_base = static_cast<char*>(buffer.iov_base) + remaining;
        buffer.iov_len -= remaining;
        remaining = 0;
      }
    }
  }
  return {};
}

// fsync(2), retried when a signal interrupts it.
int fsync_retrying(int descriptor) {
  int result;
  do {
    result = ::fsync(descriptor);
  } while (result != 0 && errno == EINTR);
  return result;
}

std::filesystem::path folder_of(const std::filesystem::path& path) {
  std::filesystem::path folder = path.parent_path();
  return folder.empty() ? std::filesystem::path(".") : folder;
}

bool changes_owner(const Ownership& ownership) {
  return ownership.user != static_cast<uid_t>(-1) || ownership.group != static_cast<gid_t>(-1);
}

// Gives a just-created file or folder its owner and exact mode; the step
// that failed, or nullptr.
const char* apply_ownership(int descriptor, const Ownership& ownership) {
  if (changes_owner(ownership) && ::fchown(descriptor, ownership.user, ownership.group) != 0) {
    return "chown";
  }
  // After chown, which may clear set-id bits.
  if (ownership.mode && ::fchmod(descriptor, static_cast<mode_t>(*ownership.mode)) != 0) {
    return "chmod";
  }
  return nullptr;
}

// Removes trailing separators so that parent_path() walks up one level.
std::filesystem::path without_trailing_separator(const std::filesystem::path& path) {
  std::string text = path.string();
  while (text.size() > 1 && text.back() == '/') text.pop_back();
  return text;
}

}  // namespace

WriteResult write_file(const std::filesystem::path& temporary_path,
                       const std::filesystem::path& final_path,
                       std::span<const std::string_view> parts, unsigned mode,
                       const Ownership& ownership) {
  // O_EXCL: never write through a file (or symlink) someone else put there.
  UniqueFd file(::open(temporary_path.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC,
                       static_cast<mode_t>(mode)));
  if (!file) return failure(last_error(), "open");

  // From here on, every failure removes the temporary file.
  const auto discard = [&](std::error_code error, std::string step) {
    file.reset();
    ::unlink(temporary_path.c_str());
    return failure(error, std::move(step));
  };

  if (const char* step = apply_ownership(file.get(), ownership)) {
    return discard(last_error(), step);
  }
  if (std::error_code error = write_parts(file.get(), parts)) return discard(error, "write");
  // fsync, not fdatasync: a new file's size and block map are metadata, and
  // without them the data is unreachable after a crash.
  if (fsync_retrying(file.get()) != 0) return discard(last_error(), "fsync");
  // Some file systems (NFS) report write errors only at close. EINTR here
  // still releases the descriptor, and the data is already on disk.
  if (const int close_error = file.close(); close_error != 0 && close_error != EINTR) {
    return discard({close_error, std::system_category()}, "close");
  }
  if (::rename(temporary_path.c_str(), final_path.c_str()) != 0) {
    return discard(last_error(), "rename");
  }
  if (std::error_code error = sync_directory(folder_of(final_path))) {
    return failure(error, "fsync-dir");
  }
  return {};
}

WriteResult replace_file(const std::filesystem::path& final_path, std::string_view contents,
                         unsigned mode) {
  // pid and a process-wide counter make the name unique among concurrent
  // writers of the same file, in this process and in others.
  static std::atomic<unsigned long long> counter{0};
  std::filesystem::path temporary_path = final_path;
  temporary_path += ".tmp." + std::to_string(::getpid()) + "." + std::to_string(++counter);
  const std::string_view parts[] = {contents};
  return write_file(temporary_path, final_path, parts, mode);
}

std::error_code write_all(int descriptor, std::span<const std::string_view> parts) {
  return write_parts(descriptor, parts);
}

std::error_code sync_data(int descriptor) {
  int result;
  do {
    result = ::fdatasync(descriptor);
  } while (result != 0 && errno == EINTR);
  return result == 0 ? std::error_code{} : last_error();
}

std::error_code sync_directory(const std::filesystem::path& directory) {
  UniqueFd folder(::open(directory.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  if (!folder) return last_error();
  if (fsync_retrying(folder.get()) != 0) {
    // A few file systems cannot fsync folders at all and say EINVAL; there is
    // nothing more durable to be had from them.
    if (errno != EINVAL) return last_error();
  }
  return {};
}

std::error_code make_directories(const std::filesystem::path& directory,
                                 const Ownership& ownership) {
  const std::filesystem::path target = without_trailing_separator(directory);
  if (target.empty()) return std::make_error_code(std::errc::invalid_argument);

  // Walk up to the nearest folder that exists, remembering what is missing.
  std::vector<std::filesystem::path> missing;
  for (std::filesystem::path current = target;; current = current.parent_path()) {
    struct stat status {};
    if (::stat(current.c_str(), &status) == 0) {
      if (!S_ISDIR(status.st_mode)) return std::make_error_code(std::errc::not_a_directory);
      break;
    }
    if (errno != ENOENT) return last_error();
    missing.push_back(current);
    if (!current.has_parent_path() || current.parent_path() == current) break;
  }

  // Create top-down; each creation changes the parent's entries, so the
  // parent is fsynced before the child is used.
  for (auto it = missing.rbegin(); it != missing.rend(); ++it) {
    if (::mkdir(it->c_str(), 0700) != 0) {
      if (errno != EEXIST) return last_error();
      // Another thread or process created it meanwhile; it must be a folder.
      // Its parent is still synced below: the creator may not have done so yet.
      struct stat status {};
      if (::stat(it->c_str(), &status) != 0) return last_error();
      if (!S_ISDIR(status.st_mode)) return std::make_error_code(std::errc::not_a_directory);
    } else if (changes_owner(ownership) || ownership.mode) {
      // Ours: owner and mode before anything is put in it.
      UniqueFd created(::open(it->c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC | O_NOFOLLOW));
      if (!created || apply_ownership(created.get(), ownership) != nullptr) return last_error();
    }
    if (std::error_code error = sync_directory(folder_of(*it))) return error;
  }
  return {};
}

}  // namespace stokend::durable
