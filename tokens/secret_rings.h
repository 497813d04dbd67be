// The server secrets that key token MACs: a ring for temporary tokens and a
// ring for permanent tokens, several secrets each, so that keys rotate
// without invalidating the tokens already handed out.
//
// File (config key tokens.secrets_file), created on first start with mode
// 0600 and one secret per ring; one secret per line, '#' comments:
//
//     <ring: temp|perm> <id> <created unix secs> <base64 32-octet key>
//
// Ids are unique across both rings and made of [a-z0-9] ("t1", "p1", ...);
// the newest secret of a ring (highest created, last in the file on a tie)
// is the active one that mints; every secret in the file verifies.
//
// Contract: load() refuses a file that is not mode 0600 or 0400, has a bad
// line (the error names FILE:LINE), a duplicate id or an empty ring. Writes go
// through common/durable_file (temporary file, fsync, rename, folder fsync)
// under an exclusive flock on "<file>.lock", so stokenctl and the daemon never
// see half a file. Thread-safe: readers work on an immutable snapshot, and
// refresh_if_changed() (called by the daemon on its loop thread) swaps in a
// new one, so worker threads minting tokens never see a ring half-loaded.
#pragma once

#include <array>
#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

namespace stokend::tokens {

enum class TokenKind { temporary, permanent };

std::string_view kind_name(TokenKind kind);  // "temp" / "perm"

struct Secret {
  TokenKind kind = TokenKind::temporary;
  std::string id;
  std::int64_t created = 0;
  std::array<std::uint8_t, 32> key{};
};

class SecretFileError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

class SecretRings {
 public:
  // Loads the file, or creates it (and its folder) with a fresh secret per
  // ring when it does not exist. Throws SecretFileError.
  static SecretRings load_or_create(const std::string& path, std::int64_t now);
  // Loads an existing file. Throws SecretFileError.
  static SecretRings load(const std::string& path);

  // Adds a new active secret to the ring(s) and drops secrets that stopped
  // being active more than `keep_after_retired` ago (the longest token
  // validity plus the clock skew: no token they made can still verify).
  // Rewrites the file durably under its lock. Returns the new secrets' ids.
  static std::vector<std::string> rotate(const std::string& path, std::optional<TokenKind> ring,
                                         std::int64_t now,
                                         std::chrono::seconds keep_temporary_after_retired,
                                         std::chrono::seconds keep_permanent_after_retired);

  struct Snapshot {
    std::vector<Secret> secrets;
    const Secret& active(TokenKind kind) const;
    const Secret* find(std::string_view id) const;  // nullptr when unknown
  };
  std::shared_ptr<const Snapshot> snapshot() const;
  const std::string& path() const { return path_; }

  // Reloads when the file changed on disk (size, mtime or inode), checking at
  // most once per `min_interval` (a stat(2)). A file that became invalid is
  // logged and the loaded secrets stay in use. Returns true when it
  // reloaded. Thread-safe (the daemon calls it at session starts on the
  // loop thread, and the token authority on a worker thread when a token
  // names a secret it does not know: token_authority.h).
  bool refresh_if_changed(std::chrono::milliseconds min_interval = std::chrono::seconds(1)) const;

 private:
  // What refresh_if_changed() compares and when it last looked: behind a
  // mutex of its own, held by pointer so that SecretRings stays movable.
  struct RefreshState;

  std::string path_;
  // Read and swapped with std::atomic_load/store; mutable because a
  // refresh swaps it in a const SecretRings (the file is the state).
  mutable std::shared_ptr<const Snapshot> snapshot_;
  std::shared_ptr<RefreshState> refresh_;
};

}  // namespace stokend::tokens
