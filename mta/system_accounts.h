// Users and groups of the system (the passwd and group databases), looked
// up by name: the accounts stokend runs as (`user:`, `group:`) and gives
// its Maildir files to (`maildir.owner`, `maildir.group`); and the one-way
// change of a root process into such a user, which both programs make
// (the daemon after binding its ports, stokenctl before touching a file,
// so that the files either writes stay the user's).
//
// Contract: the lookups are thread-safe (the reentrant getpwnam_r /
// getgrnam_r) and return nullopt when no such account exists or the
// database cannot be read; configuration names accounts, never ids.
// become_user() must run with effective uid 0; it returns an error text,
// empty once every id has changed and root provably cannot be regained.
#pragma once

#include <sys/types.h>

#include <optional>
#include <string>

namespace stokend {

struct SystemUser {
  std::string name;
  uid_t uid = 0;
  gid_t primary_group = 0;
};

std::optional<SystemUser> find_system_user(const std::string& name);
std::optional<SystemUser> find_system_user(uid_t uid);
std::optional<gid_t> find_system_group(const std::string& name);

// Supplementary groups of user (initgroups), then setgid, then setuid: as
// root these set the real, effective and saved ids, so the change is for
// good; checked with getresuid/getresgid and a setuid(0) that must fail.
std::string become_user(const std::string& user, uid_t uid, gid_t gid);

}  // namespace stokend
