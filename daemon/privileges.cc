// See privileges.h.
#include "daemon/privileges.h"

#include <grp.h>
#include <spdlog/spdlog.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <vector>

#include "common/durable_file.h"
#include "mta/system_accounts.h"

namespace stokend::wiring {
namespace {

std::string failed(const std::string& step) { return step + ": " + std::strerror(errno); }

// The folders the daemon may create on its first start, for
// give_missing_directories().
std::vector<std::filesystem::path> data_directories(const Config& config) {
  std::vector<std::filesystem::path> folders = {config.spool_directory, config.maildir_root};
  for (const auto& file : {config.users_file, config.tokens.store, config.tokens.secrets_file,
                           config.control_socket}) {
    if (file.has_parent_path()) folders.push_back(file.parent_path());
  }
  if (config.tls.certificate.empty()) folders.push_back(config.tls.generated_directory);
  return folders;
}

}  // namespace

PrivilegePlan plan_privileges(const Config& config) {
  PrivilegePlan plan;
  const uid_t started_as = ::geteuid();
  std::optional<SystemUser> user;
  if (!config.user.empty()) {
    user = find_system_user(config.user);
    if (!user) {
      plan.error = "user " + config.user + ": no such user on this system";
      return plan;
    }
  }
  if (started_as != 0) {
    if (user && user->uid != started_as) {
      const auto self = find_system_user(started_as);
      plan.error = "user " + config.user + ": stokend was started as " +
                   (self ? self->name : "uid " + std::to_string(started_as)) +
                   " and only root can change user; start it as root or as " + config.user;
    }
    return plan;  // already unprivileged, nothing to drop
  }
  if (!user || user->uid == 0) {
    if (!config.allow_root) {
      plan.error = std::string(config.source_file.string()) +
                   ": refusing to run as root: set `user:` (e.g. stokend) to the account to "
                   "run as once the ports are bound, or `allow_root: true` to run as root";
    }
    return plan;
  }
  RunAs run_as{user->name, user->uid, user->primary_group};
  if (!config.group.empty()) {
    const auto group = find_system_group(config.group);
    if (!group) {
      plan.error = "group " + config.group + ": no such group on this system";
      return plan;
    }
    run_as.gid = *group;
  }
  plan.drop = run_as;
  return plan;
}

std::string give_missing_directories(const Config& config, const RunAs& run_as) {
  for (const auto& folder : data_directories(config)) {
    // What is missing, bottom-up; an existing folder is the operator's and
    // keeps its owner (the package creates them owned by the user).
    std::vector<std::filesystem::path> missing;
    for (auto current = folder; !current.empty(); current = current.parent_path()) {
      struct stat status {};
      if (::stat(current.c_str(), &status) == 0) break;
      missing.push_back(current);
      if (current.parent_path() == current) break;
    }
    if (missing.empty()) continue;
    if (auto error = durable::make_directories(folder)) {
      return "cannot create " + folder.string() + ": " + error.message();
    }
    for (const auto& created : missing) {
      if (auto error = give_to_user(created, run_as); !error.empty()) return error;
    }
  }
  return {};
}

std::string act_as_user(const RunAs& run_as) {
  // Groups first: once the effective id is not root, they cannot change.
  if (::initgroups(run_as.user.c_str(), run_as.gid) != 0)
    return failed("initgroups " + run_as.user);
  if (::setegid(run_as.gid) != 0) return failed("setegid");
  if (::seteuid(run_as.uid) != 0) return failed("seteuid");
  return {};
}

std::string act_as_root() {
  if (::seteuid(0) != 0) return failed("seteuid 0");
  if (::setegid(0) != 0) return failed("setegid 0");
  return {};
}

std::string give_to_user(const std::filesystem::path& path, const RunAs& run_as) {
  if (::chown(path.c_str(), run_as.uid, run_as.gid) != 0) return failed("chown " + path.string());
  return {};
}

std::string drop_privileges(const RunAs& run_as) {
  if (::geteuid() != 0) {
    if (auto error = act_as_root(); !error.empty()) return error;
  }
  return become_user(run_as.user, run_as.uid, run_as.gid);
}

namespace {

bool succeeded(const std::string& error) {
  if (!error.empty()) spdlog::critical("{}", error);
  return error.empty();
}

}  // namespace

bool PrivilegeSteps::begin(const Config& config) {
  PrivilegePlan plan = plan_privileges(config);
  if (!succeeded(plan.error)) return false;
  run_as_ = std::move(plan.drop);
  return !run_as_ || succeeded(give_missing_directories(config, *run_as_));
}

bool PrivilegeSteps::act_as_user() const {
  return !run_as_ || succeeded(wiring::act_as_user(*run_as_));
}

bool PrivilegeSteps::act_as_root() const { return !run_as_ || succeeded(wiring::act_as_root()); }

bool PrivilegeSteps::give_to_user(const std::filesystem::path& path) const {
  return !run_as_ || succeeded(wiring::give_to_user(path, *run_as_));
}

bool PrivilegeSteps::drop() const {
  if (!run_as_) return true;
  if (!succeeded(drop_privileges(*run_as_))) return false;
  spdlog::info("running as user {} (uid {}, gid {})", run_as_->user, run_as_->uid, run_as_->gid);
  return true;
}

}  // namespace stokend::wiring
