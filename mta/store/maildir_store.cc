// Delivery into Maildir folders (https://cr.yp.to/proto/maildir.html) with
// the Maildir++ subfolder convention for COI/Chats.
//
// A message is written under a unique name into tmp/ and renamed into new/ by
// the durable-write helper, so a reader never sees a partial message and a
// delivery reported as done survives a crash.
#include "mta/store/maildir_store.h"

#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <system_error>
#include <utility>

#include "queue/durable_file.h"

namespace stokend::store {
namespace {

// The IMAP folder COI/Chats as a Maildir++ subfolder: '.' + the folder name
// with '.' as hierarchy separator.
constexpr const char* chat_folder_name = ".COI.Chats";

// Maildir++: an empty file of this name marks a subfolder, so that delivery
// agents do not treat it as a mailbox of its own.
constexpr const char* subfolder_marker_name = "maildirfolder";

DeliveryResult temporary_failure(std::string detail) {
  return DeliveryResult{DeliveryResult::Status::temporary_failure, "", std::move(detail)};
}

DeliveryResult permanent_failure(std::string detail) {
  return DeliveryResult{DeliveryResult::Status::permanent_failure, "", std::move(detail)};
}

// A path component taken from an address must name exactly one folder
// below its parent: no separator, no "." or ".." (which start with '.'; a
// leading '.' would also make a local part look like a Maildir++ subfolder),
// no NUL (which would end the path early).
bool is_safe_component(std::string_view component) {
  return !component.empty() && component.front() != '.' &&
         component.find('/') == std::string_view::npos &&
         component.find('\0') == std::string_view::npos;
}

// Maildir file names use '/' and ':' specially; the Maildir description asks
// for them to be written as "\057" and "\072". Other characters that would
// split the name into words (it is also the delivery id in SMTP replies) are
// escaped the same way.
std::string sanitise_hostname(std::string_view hostname) {
  if (hostname.empty()) return "localhost";
  std::string result;
  for (char c : hostname) {
    const auto byte = static_cast<unsigned char>(c);
    if (c == '/' || c == ':' || c == '\\' || byte <= ' ' || byte == 0x7f) {
      char escaped[8];
      std::snprintf(escaped, sizeof escaped, "\\%03o", static_cast<unsigned>(byte));
      result += escaped;
    } else {
      result += c;
    }
  }
  return result;
}

std::string describe(std::string_view step, const std::error_code& error) {
  return "maildir delivery failed at " + std::string(step) + ": " + error.message();
}

// Creates a Maildir's tmp/, new/ and cur/ (and their parents) when missing.
std::error_code make_maildir(const std::filesystem::path& maildir) {
  for (const char* part : {"tmp", "new", "cur"}) {
    if (std::error_code error = durable::make_directories(maildir / part)) return error;
  }
  return {};
}

// Creates the Maildir++ marker file of a subfolder when missing.
durable::WriteResult make_subfolder_marker(const std::filesystem::path& maildir) {
  const std::filesystem::path marker = maildir / subfolder_marker_name;
  std::error_code error;
  if (std::filesystem::exists(marker, error)) return {};
  return durable::replace_file(marker, "");
}

}  // namespace

MaildirStore::MaildirStore(std::filesystem::path root, std::string hostname)
    : root_(std::move(root)), hostname_for_file_names_(sanitise_hostname(hostname)) {}

std::filesystem::path MaildirStore::maildir_of(const Recipient& recipient) const {
  std::filesystem::path mailbox = root_ / recipient.domain / recipient.local_part;
  return recipient.chat_folder ? mailbox / chat_folder_name : mailbox;
}

std::string MaildirStore::unique_file_name(std::size_t message_size) const {
  // "<secs>.M<usecs>P<pid>Q<counter>.<host>,S=<size>": the modern Maildir
  // unique name (time, process, per-process delivery count, host), plus
  // Dovecot's S= size so that readers need not stat the file. The counter is
  // process-wide so that several stores in one process never collide.
  static std::atomic<unsigned long long> deliveries{0};
  const auto since_epoch = std::chrono::system_clock::now().time_since_epoch();
  const auto seconds = std::chrono::duration_cast<std::chrono::seconds>(since_epoch);
  const auto microseconds =
      std::chrono::duration_cast<std::chrono::microseconds>(since_epoch - seconds);
  return std::to_string(seconds.count()) + ".M" + std::to_string(microseconds.count()) + "P" +
         std::to_string(::getpid()) + "Q" + std::to_string(++deliveries) + "." +
         hostname_for_file_names_ + ",S=" + std::to_string(message_size);
}

DeliveryResult MaildirStore::deliver(const Recipient& recipient, std::string_view message) {
  if (!is_safe_component(recipient.domain)) {
    return permanent_failure("domain cannot be stored as a maildir folder");
  }
  if (!is_safe_component(recipient.local_part)) {
    return permanent_failure("local part cannot be stored as a maildir folder");
  }

  // The user's own Maildir always exists, so a chat subfolder never sits in
  // something that is not a Maildir++ mailbox.
  const std::filesystem::path mailbox = root_ / recipient.domain / recipient.local_part;
  if (std::error_code error = make_maildir(mailbox)) {
    return temporary_failure(describe("mkdir", error));
  }
  const std::filesystem::path maildir = maildir_of(recipient);
  if (recipient.chat_folder) {
    if (std::error_code error = make_maildir(maildir)) {
      return temporary_failure(describe("mkdir", error));
    }
    if (auto marker = make_subfolder_marker(maildir); !marker) {
      return temporary_failure(describe(marker.step + " " + subfolder_marker_name, marker.error));
    }
  }

  const std::string name = unique_file_name(message.size());
  const std::filesystem::path final_path = maildir / "new" / name;
  const std::string_view parts[] = {message};
  const durable::WriteResult written =
      durable::write_file(maildir / "tmp" / name, final_path, parts);
  if (!written) {
    if (written.step == "fsync-dir") {
      // The message is already visible in new/ but may not survive a crash;
      // the sender will retry, so withdraw it rather than risk a duplicate.
      ::unlink(final_path.c_str());
      static_cast<void>(durable::sync_directory(maildir / "new"));
    }
    return temporary_failure(describe(written.step, written.error));
  }
  return DeliveryResult{DeliveryResult::Status::delivered, name, ""};
}

}  // namespace stokend::store
