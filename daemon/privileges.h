// Who the daemon runs as. Started as root, stokend does what only root may
// (bind ports below 1024, create the control socket in a root-owned /run)
// and then runs as `user:` (and `group:`, or the user's primary group),
// for good, before the event loop reads a single client byte.
//
// The sequence run_daemon() follows when plan_privileges() says to drop:
//   1. give_missing_directories(): the data folders it is about to create
//      (spool, Maildir root, the folders of the users file, token files,
//      generated certificate and control socket) are created by root and
//      handed to the user, so the steps below can write in them.
//   2. act_as_user(): effective ids only (the saved id stays root), so every
//      file the start creates (spool segments, token store, certificate,
//      lock file) belongs to the user; a restart can read them after the drop.
//   3. act_as_root() around binding the listeners and the control socket
//      (give_to_user() on the socket file, so stokenctl run as the user can
//      connect), then drop_privileges(): supplementary groups (initgroups),
//      setgid, setuid, for real, effective and saved ids, and a check that
//      root cannot be regained (setuid(0) must fail).
//
// Contract: plan_privileges() decides without changing anything; the
// reasons it refuses are the daemon's one-line start-up errors:
//   - root without `user:` (or with a user that is root): refused unless
//     `allow_root: true`, as Postfix refuses a root mail_owner;
//   - not root, with `user:` naming someone else: refused (only root can
//     change user; systemd's User= is the way then).
// Not root and `user:` empty or naming itself: nothing to do. Every other
// function returns an error text, empty on success; after a failure the
// daemon stops (the caller returns 1).
#pragma once

#include <sys/types.h>

#include <filesystem>
#include <optional>
#include <string>

#include "mta/config/config.h"

namespace stokend::wiring {

struct RunAs {
  std::string user;
  uid_t uid = 0;
  gid_t gid = 0;
};

struct PrivilegePlan {
  std::optional<RunAs> drop;  // empty: run as started
  std::string error;          // non-empty: refuse to start
};

PrivilegePlan plan_privileges(const Config& config);

std::string give_missing_directories(const Config& config, const RunAs& run_as);
std::string act_as_user(const RunAs& run_as);
std::string act_as_root();
std::string give_to_user(const std::filesystem::path& path, const RunAs& run_as);
std::string drop_privileges(const RunAs& run_as);

// The sequence above as run_daemon() takes it: each step logs its failure
// (one critical line) and returns false. With nothing to drop, every step
// after begin() does nothing and succeeds.
class PrivilegeSteps {
 public:
  bool begin(const Config& config);  // plan_privileges() and step 1
  bool act_as_user() const;          // step 2
  bool act_as_root() const;          // step 3, before binding
  bool give_to_user(const std::filesystem::path& path) const;
  bool drop() const;  // step 3, for good; logs who the daemon runs as

 private:
  std::optional<RunAs> run_as_;
};

}  // namespace stokend::wiring
