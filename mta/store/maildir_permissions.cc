// See maildir_permissions.h.
#include "mta/store/maildir_permissions.h"

#include <unistd.h>

#include <algorithm>
#include <vector>

#include "mta/system_accounts.h"

namespace stokend::store {

std::optional<MaildirPermissions> maildir_permissions_of(const Config& config, std::string& error) {
  MaildirPermissions permissions;
  permissions.folders.mode = config.maildir.directory_mode;
  permissions.files.mode = config.maildir.file_mode;
  const bool root = ::geteuid() == 0;
  if (!config.maildir.owner.empty()) {
    const auto owner = find_system_user(config.maildir.owner);
    if (!owner) {
      error = "maildir.owner " + config.maildir.owner + ": no such user on this system";
      return std::nullopt;
    }
    if (!root && owner->uid != ::geteuid()) {
      error = "maildir.owner " + config.maildir.owner +
              ": only root can give files to another user; run as that user, or share "
              "through maildir.group";
      return std::nullopt;
    }
    permissions.folders.user = permissions.files.user = owner->uid;
  }
  if (!config.maildir.group.empty()) {
    const auto group = find_system_group(config.maildir.group);
    if (!group) {
      error = "maildir.group " + config.maildir.group + ": no such group on this system";
      return std::nullopt;
    }
    std::vector<gid_t> groups(static_cast<std::size_t>(std::max(::getgroups(0, nullptr), 0)));
    const int count = ::getgroups(static_cast<int>(groups.size()), groups.data());
    groups.resize(static_cast<std::size_t>(std::max(count, 0)));
    const bool member =
        *group == ::getegid() || std::find(groups.begin(), groups.end(), *group) != groups.end();
    if (!root && !member) {
      error = "maildir.group " + config.maildir.group +
              ": the daemon's user is not a member of it, so cannot give files to it";
      return std::nullopt;
    }
    permissions.folders.group = permissions.files.group = *group;
  }
  return permissions;
}

}  // namespace stokend::store
