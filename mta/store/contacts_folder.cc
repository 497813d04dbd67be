// Reading and replacing Maildir messages; see contacts_folder.h.
#include "mta/store/contacts_folder.h"

#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <system_error>

#include "common/durable_file.h"
#include "mta/store/maildir_layout.h"

namespace stokend::store {
namespace {

namespace fs = std::filesystem;

constexpr const char* lock_file_name = "stokend-contacts.lock";

std::string errno_text(int error) { return std::system_category().message(error); }

// Reads a regular file without following a symbolic link; the error says
// why not, and stays empty when the file is gone: an IMAP server expunged or
// renamed it between listing and reading, which is no problem.
bool read_regular_file(const fs::path& path, MaildirMessage& message, std::string& error) {
  UniqueFd file(::open(path.c_str(), O_RDONLY | O_NOFOLLOW | O_CLOEXEC | O_NONBLOCK));
  if (!file) {
    if (errno != ENOENT) error = path.string() + ": cannot open: " + errno_text(errno);
    return false;
  }
  struct stat status {};
  if (::fstat(file.get(), &status) != 0) {
    error = path.string() + ": cannot stat: " + errno_text(errno);
    return false;
  }
  if (!S_ISREG(status.st_mode)) {
    error = path.string() + ": not a regular file";
    return false;
  }
  if (static_cast<std::uintmax_t>(status.st_size) > max_contact_message_size) {
    error = path.string() + ": larger than " + std::to_string(max_contact_message_size) +
            " octets, left alone";
    return false;
  }
  message.path = path;
  message.modified_nanoseconds =
      static_cast<std::int64_t>(status.st_mtim.tv_sec) * 1000000000 + status.st_mtim.tv_nsec;
  message.text.clear();
  char buffer[65536];
  while (true) {
    const ssize_t got = ::read(file.get(), buffer, sizeof buffer);
    if (got < 0) {
      if (errno == EINTR) continue;
      error = path.string() + ": cannot read: " + errno_text(errno);
      return false;
    }
    if (got == 0) break;
    message.text.append(buffer, static_cast<std::size_t>(got));
    if (message.text.size() > max_contact_message_size) {
      error = path.string() + ": grew beyond " + std::to_string(max_contact_message_size) +
              " octets while read, left alone";
      return false;
    }
  }
  return true;
}

// The unique part of a Maildir file name: everything before ":2,".
std::string unique_part(const fs::path& file) {
  const std::string name = file.filename().string();
  return name.substr(0, name.find(':'));
}

// Removes a message, or the same message under the name an IMAP server
// gave it meanwhile (new/ to cur/, changed flags). Returns 0 on success or
// when it is gone already, else errno.
int remove_message(const fs::path& folder, const fs::path& file) {
  if (::unlink(file.c_str()) == 0) return 0;
  if (errno != ENOENT) return errno;
  const std::string unique = unique_part(file);
  for (const char* part : {"cur", "new"}) {
    std::error_code error;
    if (!fs::is_directory(fs::symlink_status(folder / part, error))) continue;
    for (const auto& entry : fs::directory_iterator(folder / part, error)) {
      if (unique_part(entry.path()) != unique) continue;
      if (::unlink(entry.path().c_str()) != 0 && errno != ENOENT) return errno;
      return 0;
    }
  }
  return 0;
}

}  // namespace

bool is_maildir(const fs::path& folder) {
  std::error_code error;
  return fs::is_directory(folder / "cur", error) || fs::is_directory(folder / "new", error);
}

MaildirRead read_maildir_messages(const fs::path& folder) {
  MaildirRead result;
  for (const char* part : {"cur", "new"}) {
    const fs::path subfolder = folder / part;
    std::error_code error;
    const fs::file_status status = fs::symlink_status(subfolder, error);
    if (!fs::exists(status)) continue;
    if (!fs::is_directory(status)) {
      // A link would lead reads, and removals, out of the mailbox.
      result.problems.push_back(subfolder.string() + ": not a folder (a link?), not read");
      continue;
    }
    std::vector<fs::path> files;
    for (fs::directory_iterator it(subfolder, error), end; !error && it != end;
         it.increment(error)) {
      const std::string name = it->path().filename().string();
      if (name.empty() || name.front() == '.') continue;
      files.push_back(it->path());
    }
    if (error) {
      result.problems.push_back(subfolder.string() + ": cannot list: " + error.message());
      continue;
    }
    std::sort(files.begin(), files.end());
    for (const fs::path& file : files) {
      MaildirMessage message;
      std::string problem;
      if (read_regular_file(file, message, problem)) {
        result.messages.push_back(std::move(message));
      } else if (!problem.empty()) {
        result.problems.push_back(std::move(problem));
      }
    }
  }
  return result;
}

UniqueFd lock_folder(const fs::path& folder, std::string& error) {
  const fs::path path = folder / lock_file_name;
  UniqueFd lock(::open(path.c_str(), O_RDWR | O_CREAT | O_NOFOLLOW | O_CLOEXEC, 0600));
  if (!lock) {
    error = path.string() + ": cannot open: " + errno_text(errno);
    return lock;
  }
  while (::flock(lock.get(), LOCK_EX) != 0) {
    if (errno == EINTR) continue;
    error = path.string() + ": cannot lock: " + errno_text(errno);
    return UniqueFd();
  }
  return lock;
}

std::string maildir_flags(const fs::path& file) {
  const std::string name = file.filename().string();
  const std::size_t info = name.find(":2,");
  return info == std::string::npos ? "" : name.substr(info + 3);
}

ReplaceResult replace_messages(const fs::path& folder, std::string_view host,
                               std::string_view message, std::string_view flags,
                               const std::vector<fs::path>& replaced,
                               const MaildirPermissions& permissions) {
  ReplaceResult result;
  if (!message.empty()) {
    const std::string name = unique_maildir_file_name(host, message.size());
    const fs::path final_path = folder / "cur" / (name + ":2," + std::string(flags));
    const std::string_view parts[] = {message};
    const durable::WriteResult written =
        durable::write_file(folder / "tmp" / name, final_path, parts, 0600, permissions.files);
    if (!written) {
      if (written.step == "fsync-dir") {
        // Visible but perhaps not durable: withdrawn, so that the old
        // message is never removed for a new one a crash could lose.
        ::unlink(final_path.c_str());
        static_cast<void>(durable::sync_directory(folder / "cur"));
      }
      result.error = folder.string() + ": writing a contact message failed at " + written.step +
                     ": " + written.error.message();
      return result;
    }
    result.added = final_path;
  }
  for (const fs::path& file : replaced) {
    if (const int error = remove_message(folder, file); error != 0) {
      result.error = file.string() + ": cannot remove: " + errno_text(error);
    } else {
      ++result.removed;
    }
  }
  for (const char* part : {"cur", "new"}) {
    if (std::error_code error = durable::sync_directory(folder / part); error) {
      if (result.error.empty()) {
        result.error = (folder / part).string() + ": cannot fsync: " + error.message();
      }
    }
  }
  return result;
}

}  // namespace stokend::store
