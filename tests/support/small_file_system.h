// Test helper: a small tmpfs of its own, for what happens when a file system
// fills up (ENOSPC). Mounting needs root (or CAP_SYS_ADMIN); without it the
// tests that use this say so with a warning and check nothing.
#pragma once

#include <fcntl.h>
#include <stdlib.h>
#include <sys/mount.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <string>
#include <system_error>

#include "common/unique_fd.h"

namespace stokend::testing {

class SmallFileSystem {
 public:
  explicit SmallFileSystem(std::size_t kilobytes) {
    std::string pattern =
        (std::filesystem::temp_directory_path() / "stokend-small-fs-XXXXXX").string();
    if (::mkdtemp(pattern.data()) == nullptr) {
      why_not_ = std::strerror(errno);
      return;
    }
    path_ = pattern;
    const std::string options = "size=" + std::to_string(kilobytes) + "k,mode=0700";
    if (::mount("tmpfs", path_.c_str(), "tmpfs", 0, options.c_str()) != 0) {
      why_not_ = "cannot mount a tmpfs: " + std::string(std::strerror(errno));
      return;
    }
    mounted_ = true;
  }
  ~SmallFileSystem() {
    if (mounted_) ::umount2(path_.c_str(), MNT_DETACH);
    if (!path_.empty()) ::rmdir(path_.c_str());
  }
  SmallFileSystem(const SmallFileSystem&) = delete;
  SmallFileSystem& operator=(const SmallFileSystem&) = delete;

  bool mounted() const { return mounted_; }
  const std::string& why_not() const { return why_not_; }
  const std::filesystem::path& path() const { return path_; }
  std::filesystem::path filler() const { return path_ / "filler"; }

  // Writes the filler file until the file system is full; returns whether
  // it ended in ENOSPC.
  bool fill() const {
    UniqueFd file(::open(filler().c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600));
    if (!file) return false;
    const std::string block(4096, 'f');
    for (;;) {
      if (::write(file.get(), block.data(), block.size()) < 0) return errno == ENOSPC;
    }
  }
  // Frees what fill() took.
  void make_room() const { ::unlink(filler().c_str()); }

 private:
  std::filesystem::path path_;
  bool mounted_ = false;
  std::string why_not_;
};

}  // namespace stokend::testing
