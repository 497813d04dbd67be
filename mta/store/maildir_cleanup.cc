// Stale tmp/ files of the Maildir store: see maildir_cleanup.h.
//
// The walk uses openat(2) with O_NOFOLLOW and fstatat(2) with
// AT_SYMLINK_NOFOLLOW relative to folder descriptors rather than paths, so a
// folder swapped for a symbolic link while the walk runs is refused, not
// followed: checking a path first and opening it afterwards would leave that
// window open.
#include "mta/store/maildir_cleanup.h"

#include <dirent.h>
#include <fcntl.h>
#include <spdlog/spdlog.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <exception>
#include <memory>
#include <optional>
#include <string>
#include <system_error>
#include <vector>

#include "common/call_free.h"
#include "common/unique_fd.h"
#include "mta/store/maildir_layout.h"

namespace stokend::store {
namespace {

namespace fs = std::filesystem;
using DirectoryStream = std::unique_ptr<DIR, CallFree<closedir>>;

std::string describe_errno(int error) { return std::system_category().message(error); }

class TmpCleanup {
 public:
  // own_deliveries_at_any_age: the start-up run (maildir_cleanup.h).
  TmpCleanup(std::chrono::system_clock::time_point cutoff, bool own_deliveries_at_any_age)
      : cutoff_(cutoff), own_deliveries_at_any_age_(own_deliveries_at_any_age) {}

  void run(const fs::path& root);
  const MaildirCleanupResult& result() const { return result_; }

 private:
  UniqueFd open_folder(int parent, const std::string& name, const fs::path& shown);
  std::optional<std::vector<std::string>> names_in(int folder, const fs::path& shown);
  void clean_user(int domain, const std::string& name, const fs::path& shown);
  void clean_tmp(int maildir, const fs::path& shown);
  void report(const fs::path& shown, std::string_view action, int error);

  std::chrono::system_clock::time_point cutoff_;
  bool own_deliveries_at_any_age_;
  MaildirCleanupResult result_;
};

void TmpCleanup::report(const fs::path& shown, std::string_view action, int error) {
  ++result_.errors;
  spdlog::error("maildir cleanup: cannot {} {}: {}", action, shown.string(), describe_errno(error));
}

// A folder below root, or nothing. Missing entries, links and files where a
// folder might be are skipped without complaint: they are not ours to walk.
UniqueFd TmpCleanup::open_folder(int parent, const std::string& name, const fs::path& shown) {
  UniqueFd folder(::openat(parent, name.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC));
  if (!folder && errno != ENOENT && errno != ENOTDIR && errno != ELOOP) {
    report(shown, "open", errno);
  }
  return folder;
}

// The entries of a folder except "." and "..". Names are collected before
// anything is removed, so the listing does not depend on how readdir(3)
// behaves while entries disappear.
std::optional<std::vector<std::string>> TmpCleanup::names_in(int folder, const fs::path& shown) {
  // fdopendir() takes over the descriptor it is given; the caller keeps its own.
  UniqueFd copy(::fcntl(folder, F_DUPFD_CLOEXEC, 0));
  if (!copy) {
    report(shown, "list", errno);
    return std::nullopt;
  }
  DirectoryStream stream(::fdopendir(copy.get()));
  if (!stream) {
    report(shown, "list", errno);
    return std::nullopt;
  }
  copy.release();
  std::vector<std::string> names;
  for (;;) {
    errno = 0;
    const dirent* entry = ::readdir(stream.get());
    if (entry == nullptr) break;
    if (std::strcmp(entry->d_name, ".") == 0 || std::strcmp(entry->d_name, "..") == 0) continue;
    names.emplace_back(entry->d_name);
  }
  if (errno != 0) {
    report(shown, "list", errno);
    return std::nullopt;
  }
  return names;
}

void TmpCleanup::clean_tmp(int maildir, const fs::path& shown) {
  const fs::path tmp_shown = shown / "tmp";
  UniqueFd tmp = open_folder(maildir, "tmp", tmp_shown);
  if (!tmp) return;
  const auto names = names_in(tmp.get(), tmp_shown);
  if (!names) return;
  for (const std::string& name : *names) {
    struct stat status {};
    if (::fstatat(tmp.get(), name.c_str(), &status, AT_SYMLINK_NOFOLLOW) != 0) {
      if (errno != ENOENT) report(tmp_shown / name, "examine", errno);
      continue;
    }
    // Links, folders and the like: not what a delivery leaves behind.
    if (!S_ISREG(status.st_mode)) continue;
    const auto modified = std::chrono::system_clock::time_point(
        std::chrono::duration_cast<std::chrono::system_clock::duration>(
            std::chrono::seconds(status.st_mtim.tv_sec) +
            std::chrono::nanoseconds(status.st_mtim.tv_nsec)));
    const bool unfinished_delivery = own_deliveries_at_any_age_ && is_delivery_tmp_file_name(name);
    if (modified >= cutoff_ && !unfinished_delivery) continue;
    if (::unlinkat(tmp.get(), name.c_str(), 0) != 0) {
      if (errno != ENOENT) report(tmp_shown / name, "remove", errno);
      continue;
    }
    ++result_.removed;
    if (unfinished_delivery) ++result_.unfinished_deliveries_removed;
  }
}

// A user's Maildir and its Maildir++ folders (".Name", one level down).
void TmpCleanup::clean_user(int domain, const std::string& name, const fs::path& shown) {
  UniqueFd user = open_folder(domain, name, shown);
  if (!user) return;
  clean_tmp(user.get(), shown);
  const auto names = names_in(user.get(), shown);
  if (!names) return;
  for (const std::string& entry : *names) {
    if (entry.size() < 2 || entry[0] != '.') continue;
    UniqueFd folder = open_folder(user.get(), entry, shown / entry);
    if (folder) clean_tmp(folder.get(), shown / entry);
  }
}

void TmpCleanup::run(const fs::path& root) {
  // root is followed even when it is a link: it is the operator's own setting.
  UniqueFd root_folder(::open(root.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  if (!root_folder) {
    if (errno != ENOENT) report(root, "open", errno);
    return;
  }
  const auto domains = names_in(root_folder.get(), root);
  if (!domains) return;
  for (const std::string& domain_name : *domains) {
    // Domain names never start with '.'; such entries (a file system's
    // snapshot folder, say) are no mailboxes.
    if (domain_name.starts_with('.')) continue;
    UniqueFd domain = open_folder(root_folder.get(), domain_name, root / domain_name);
    if (!domain) continue;
    const auto users = names_in(domain.get(), root / domain_name);
    if (!users) continue;
    for (const std::string& user : *users) {
      clean_user(domain.get(), user, root / domain_name / user);
    }
  }
}

MaildirCleanupResult clean(const fs::path& root, std::chrono::seconds max_age,
                           std::chrono::system_clock::time_point now,
                           bool own_deliveries_at_any_age) noexcept {
  TmpCleanup cleanup(now - max_age, own_deliveries_at_any_age);
  try {
    cleanup.run(root);
    const MaildirCleanupResult& result = cleanup.result();
    spdlog::info(
        "maildir cleanup: {} tmp files removed under {} ({} older than {}s{}){}", result.removed,
        root.string(), result.removed - result.unfinished_deliveries_removed, max_age.count(),
        own_deliveries_at_any_age
            ? fmt::format(", {} unfinished deliveries", result.unfinished_deliveries_removed)
            : std::string(),
        result.errors > 0 ? fmt::format(", {} errors", result.errors) : std::string());
  } catch (const std::exception& error) {
    // Only allocation can throw here; the next run tries again.
    spdlog::error("maildir cleanup: {}", error.what());
  }
  return cleanup.result();
}

}  // namespace

MaildirCleanupResult remove_stale_maildir_tmp_files(
    const fs::path& root, std::chrono::seconds max_age,
    std::chrono::system_clock::time_point now) noexcept {
  return clean(root, max_age, now, /*own_deliveries_at_any_age=*/false);
}

MaildirCleanupResult remove_maildir_tmp_files_at_start(
    const fs::path& root, std::chrono::seconds max_age,
    std::chrono::system_clock::time_point now) noexcept {
  return clean(root, max_age, now, /*own_deliveries_at_any_age=*/true);
}

}  // namespace stokend::store
