// Reading and writing the messages of one Maildir folder, for the COI
// contacts folder (COI/Contacts, Maildir++ ".COI.Contacts") and for
// `stokenctl contacts import` of any Maildir folder.
//
// Writing follows the COI rule for changing a contact: a new message is
// added and the old one removed (a message's content never changes under
// its name: IMAP servers key their caches and UIDs on it). The new file is
// written into tmp/, fsynced, renamed into cur/ and cur/ fsynced
// (common/durable_file.h); only then are the old files removed and their
// folders fsynced. A crash leaves the old message, or the new one, or for a
// moment both: both carry the contact's COI-From-Hash, and the next update
// merges them (COI clients merge such duplicates too).
//
// Contract: functions report errors in their result, never throw (but
// std::bad_alloc). Files are opened without following symbolic links, and
// cur/ or new/ is not read when it is one, so a link planted in a mailbox
// cannot make stokend read or remove a file elsewhere. Callers serialise
// writers of one folder with lock_folder(), an exclusive flock that works
// across threads and processes (the daemon and stokenctl).
#pragma once

#include <cstdint>
#include <filesystem>
#include <string>
#include <string_view>
#include <vector>

#include "common/unique_fd.h"
#include "mta/store/maildir_layout.h"

namespace stokend::store {

// Messages larger than this are left alone: a contact storage message is a
// few KiB, a photo in it perhaps a few hundred.
inline constexpr std::uintmax_t max_contact_message_size = 16 * 1024 * 1024;

struct MaildirMessage {
  std::filesystem::path path;  // in cur/ or new/
  std::string text;
  std::int64_t modified_nanoseconds = 0;  // mtime: which of two copies is newer
};

struct MaildirRead {
  std::vector<MaildirMessage> messages;  // cur/ then new/, each by file name
  std::vector<std::string> problems;     // files or folders that could not be read
};

// Whether the folder is a Maildir (has cur/ or new/).
bool is_maildir(const std::filesystem::path& folder);

// Every regular file of the folder's cur/ and new/ not starting with '.'.
MaildirRead read_maildir_messages(const std::filesystem::path& folder);

// Holds an exclusive flock on FOLDER/stokend-contacts.lock (created when
// missing) until destroyed; invalid with `error` set on failure.
UniqueFd lock_folder(const std::filesystem::path& folder, std::string& error);

struct ReplaceResult {
  std::string error;            // empty on success: what failed, where
  std::filesystem::path added;  // the new file, when one was written
  std::size_t removed = 0;      // old files removed
  explicit operator bool() const { return error.empty(); }
};

// Adds `message` (when not empty) to cur/ with the Maildir info `flags`
// (e.g. "S": seen, so a contact update raises no unread count), under a
// unique name made with `host` (maildir_layout.h), then removes `replaced`.
// A replaced file renamed meanwhile (an IMAP server changing its flags) is
// found under its new name. Nothing is removed when the new file could not
// be written. The new file gets permissions.files (maildir_layout.h).
ReplaceResult replace_messages(const std::filesystem::path& folder, std::string_view host,
                               std::string_view message, std::string_view flags,
                               const std::vector<std::filesystem::path>& replaced,
                               const MaildirPermissions& permissions = {});

// The info flags of a Maildir file name ("S" for "name:2,S"), or "".
std::string maildir_flags(const std::filesystem::path& file);

}  // namespace stokend::store
