// The local users: addresses, password hashes and per-user settings.
//
// Stored in a text file (config key `users_file`), one user per line:
//     address:password-hash[:setting=value[,setting=value...]]
// e.g. alice@example.test:$argon2id$v=19$...:coi_filter=active
// Lines starting with '#' and empty lines are ignored. Addresses are stored
// lowercase. Password hashes are libsodium crypto_pwhash_str strings.
// Writes go through durable::replace_file, so the file is never half-written.
//
// Contract: UserDirectory is not thread-safe for mutation; the daemon only
// reads it from the event loop and reloads it when the file changes on disk
// (stokenctl edits the file in place). verify_password() is thread-safe and
// slow by design (it runs on a worker thread in the daemon).
#pragma once

#include <chrono>
#include <cstdint>
#include <filesystem>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <system_error>
#include <vector>

#include "common/file_stamp.h"
#include "common/unique_fd.h"
#include "mta/user_lookup.h"

namespace stokend {

// The names used in the users file and by stokenctl: off, active, seen.
std::string_view coi_filter_name(CoiFilter filter);
std::optional<CoiFilter> parse_coi_filter(std::string_view name);

class UserDirectory : public UserLookup {
 public:
  explicit UserDirectory(std::filesystem::path file);

  // Serialises editors of the users file (stokenctl): an exclusive flock on
  // FILE.lock, held until the returned descriptor is destroyed. Take it
  // before load() when the directory will be changed and saved, so that two
  // editors at once cannot lose each other's change. Returns an invalid
  // descriptor and sets error when the lock file cannot be opened.
  UniqueFd lock_for_update(std::string& error) const;

  // Reads the file. A missing file is an empty directory, not an error.
  // On a malformed line, returns an error naming FILE:LINE and keeps the
  // previous contents.
  std::optional<std::string> load();

  // Reloads when the file's modification time or size changed since the last
  // load, checking at most once a second. Returns true when it reloaded.
  // A file that fails to load is not retried until it changes again; the
  // error is in last_load_error().
  bool refresh_if_changed() override;

  // Why the most recent load (by load() or refresh_if_changed()) failed;
  // nullopt when it succeeded.
  const std::optional<std::string>& last_load_error() const { return last_load_error_; }

  const User* find(std::string_view address) const override;  // case-insensitive
  std::vector<User> all() const;

  // Mutations (stokenctl). Each writes the file durably before returning.
  std::optional<std::string> add(std::string_view address, std::string_view password);
  std::optional<std::string> remove(std::string_view address);
  std::optional<std::string> set_coi_filter(std::string_view address, CoiFilter filter);

 private:
  // Writes users_ to the file; on success the loaded version is the new one.
  std::optional<std::string> save();

  std::filesystem::path file_;
  std::map<std::string, User> users_;
  FileStamp loaded_stamp_;
  std::optional<std::chrono::steady_clock::time_point> last_check_;
  std::optional<std::string> last_load_error_;
};

// Hashes a password with crypto_pwhash_str (interactive limits).
std::string hash_password(std::string_view password);
// Constant-time check of password against a crypto_pwhash_str hash.
bool verify_password(std::string_view hash, std::string_view password);

}  // namespace stokend
