// See system_accounts.h.
#include "mta/system_accounts.h"

#include <grp.h>
#include <pwd.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <vector>

namespace stokend {
namespace {

// The buffer the reentrant lookups fill; grown while they say ERANGE, up to
// a bound (a group with thousands of members needs more than the hint).
constexpr std::size_t max_buffer_size = 1 << 20;

std::size_t initial_buffer_size(int which) {
  const long hint = ::sysconf(which);
  return hint > 0 ? static_cast<std::size_t>(hint) : 16384;
}

template <class Lookup>
std::optional<SystemUser> lookup_user(Lookup lookup) {
  std::vector<char> buffer(initial_buffer_size(_SC_GETPW_R_SIZE_MAX));
  while (true) {
    passwd entry{};
    passwd* found = nullptr;
    const int error = lookup(&entry, buffer.data(), buffer.size(), &found);
    if (error == ERANGE && buffer.size() < max_buffer_size) {
      buffer.resize(buffer.size() * 2);
      continue;
    }
    if (error != 0 || found == nullptr) return std::nullopt;
    return SystemUser{found->pw_name, found->pw_uid, found->pw_gid};
  }
}

}  // namespace

std::optional<SystemUser> find_system_user(const std::string& name) {
  if (name.empty()) return std::nullopt;
  return lookup_user([&](passwd* entry, char* buffer, std::size_t size, passwd** found) {
    return ::getpwnam_r(name.c_str(), entry, buffer, size, found);
  });
}

std::optional<SystemUser> find_system_user(uid_t uid) {
  return lookup_user([&](passwd* entry, char* buffer, std::size_t size, passwd** found) {
    return ::getpwuid_r(uid, entry, buffer, size, found);
  });
}

std::optional<gid_t> find_system_group(const std::string& name) {
  if (name.empty()) return std::nullopt;
  std::vector<char> buffer(initial_buffer_size(_SC_GETGR_R_SIZE_MAX));
  while (true) {
    group entry{};
    group* found = nullptr;
    const int error = ::getgrnam_r(name.c_str(), &entry, buffer.data(), buffer.size(), &found);
    if (error == ERANGE && buffer.size() < max_buffer_size) {
      buffer.resize(buffer.size() * 2);
      continue;
    }
    if (error != 0 || found == nullptr) return std::nullopt;
    return found->gr_gid;
  }
}

std::string become_user(const std::string& user, uid_t uid, gid_t gid) {
  const auto failed = [](const std::string& step) { return step + ": " + std::strerror(errno); };
  if (::initgroups(user.c_str(), gid) != 0) return failed("initgroups " + user);
  // setgid before setuid: after setuid the group could no longer change.
  if (::setgid(gid) != 0) return failed("setgid");
  if (::setuid(uid) != 0) return failed("setuid");
  uid_t real = 0, effective = 0, saved = 0;
  gid_t real_group = 0, effective_group = 0, saved_group = 0;
  if (::getresuid(&real, &effective, &saved) != 0 ||
      ::getresgid(&real_group, &effective_group, &saved_group) != 0) {
    return failed("getresuid");
  }
  if (real != uid || effective != uid || saved != uid || real_group != gid ||
      effective_group != gid || saved_group != gid) {
    return "the user and group ids did not all change";
  }
  // The proof: root cannot come back.
  if (::setuid(0) == 0 || ::seteuid(0) == 0) return "root could be regained after the change";
  return {};
}

}  // namespace stokend
