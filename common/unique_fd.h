// UniqueFd: sole ownership of one POSIX file descriptor.
//
// Contract: the descriptor is closed exactly once, by the destructor, reset()
// or close(). Move-only. close() reports close(2)'s error, which matters for
// writes (some file systems report write errors only at close); the
// destructor cannot report and is for paths that already failed.
#pragma once

#include <unistd.h>

#include <cerrno>
#include <utility>

namespace stokend {

class UniqueFd {
 public:
  UniqueFd() = default;
  explicit UniqueFd(int descriptor) : descriptor_(descriptor) {}
  UniqueFd(const UniqueFd&) = delete;
  UniqueFd& operator=(const UniqueFd&) = delete;
  UniqueFd(UniqueFd&& other) noexcept : descriptor_(other.release()) {}
  UniqueFd& operator=(UniqueFd&& other) noexcept {
    if (this != &other) reset(other.release());
    return *this;
  }
  ~UniqueFd() { reset(); }

  int get() const { return descriptor_; }
  bool valid() const { return descriptor_ >= 0; }
  explicit operator bool() const { return valid(); }

  // Gives up ownership without closing.
  int release() { return std::exchange(descriptor_, -1); }

  // Closes the current descriptor (ignoring errors) and owns another.
  void reset(int descriptor = -1) {
    const int previous = std::exchange(descriptor_, descriptor);
    if (previous >= 0) ::close(previous);
  }

  // Closes and returns 0, or the errno of a failed close(2). On Linux the
  // descriptor is released even when close fails (including EINTR), so it is
  // never retried.
  int close() {
    const int previous = release();
    if (previous < 0) return 0;
    return ::close(previous) == 0 ? 0 : errno;
  }

 private:
  int descriptor_ = -1;
};

}  // namespace stokend
