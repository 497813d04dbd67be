// The on-disk layout of the built-in Maildir store, shared by the mailstore
// (maildir_store.h) and the COI contacts folder (contacts_folder.h).
//
// Layout: the mailbox of local@domain is ROOT/domain/local/ (a Maildir with
// tmp/, new/, cur/). IMAP folders below it are Maildir++ subfolders: '.' +
// the folder name with '.' as hierarchy separator (COI/Chats is .COI.Chats,
// COI/Contacts is .COI.Contacts), each a Maildir of its own with an empty
// "maildirfolder" marker file.
//
// Contract: pure naming functions never throw; the two that touch the disk
// return the error of the step that failed and create folders through the
// durable-write helper (common/durable_file.h), so a created folder survives
// a crash.
#pragma once

#include <cstddef>
#include <filesystem>
#include <optional>
#include <string>
#include <string_view>
#include <system_error>

#include "common/durable_file.h"

namespace stokend::store {

// The IMAP folders COI/Chats and COI/Contacts (COI server spec, default
// names) as Maildir++ subfolder names.
inline constexpr std::string_view chat_folder_name = ".COI.Chats";
inline constexpr std::string_view contacts_folder_name = ".COI.Contacts";

// Whether a local part or domain names exactly one folder below its parent:
// no separator, no leading '.' (which covers "." and "..", and would make a
// local part look like a Maildir++ subfolder), no NUL.
bool is_safe_path_component(std::string_view component);

// ROOT/domain/local for an address local@domain (lowercased), or nullopt
// when either part could name a place outside root.
std::optional<std::filesystem::path> mailbox_of_address(const std::filesystem::path& root,
                                                        std::string_view address);

// The host name as it may appear in a Maildir file name: '/', ':', '\',
// controls and spaces written as "\ooo" (octal), as the Maildir description
// asks for '/' and ':'.
std::string sanitise_hostname_for_file_names(std::string_view hostname);

// "<secs>.M<usecs>P<pid>Q<counter>.<host>,S=<size>": the modern Maildir
// unique name plus Dovecot's S= size. The counter is process-wide, so that
// every writer in one process gets distinct names. `host` must already be
// sanitised.
std::string unique_maildir_file_name(std::string_view host, std::size_t size);

// The name a delivery of the built-in store gives its file in tmp/ while it
// writes it: the final name (unique_maildir_file_name) behind a fixed
// prefix, so that the daemon can tell its own unfinished deliveries from the
// tmp/ files of another program sharing the Maildir (Dovecot, a client's
// IMAP APPEND). Only the daemon's deliveries use it; it holds the spool lock
// while it runs, so at its start no such file is still being written.
inline constexpr std::string_view delivery_tmp_file_prefix = "stokend-delivery.";
std::string delivery_tmp_file_name(std::string_view final_name);
bool is_delivery_tmp_file_name(std::string_view name);

// Who owns the folders and files the store creates, and their modes
// (`maildir:` in the configuration): a Maildir an IMAP server running as
// another user (Dovecot as vmail) reads and changes. Default: the
// process's ids, 0700 folders and 0600 files less the umask. Folders and
// files that exist are left as they are.
struct MaildirPermissions {
  durable::Ownership folders;
  durable::Ownership files;
};

// Creates a Maildir's tmp/, new/ and cur/ (and their parents) when missing.
std::error_code make_maildir(const std::filesystem::path& maildir,
                             const MaildirPermissions& permissions = {});

// Creates the Maildir++ subfolder marker file when missing.
durable::WriteResult make_subfolder_marker(const std::filesystem::path& maildir,
                                           const MaildirPermissions& permissions = {});

// Creates the user's mailbox and the Maildir++ subfolder in it; the mailbox
// always exists first, so a subfolder never sits in something that is not a
// Maildir++ mailbox. The error names the step ("mkdir", or the marker's
// durable-write step).
struct FolderResult {
  std::error_code error;
  std::string step;
  explicit operator bool() const { return !error; }
};
FolderResult make_subfolder(const std::filesystem::path& mailbox, std::string_view folder_name,
                            const MaildirPermissions& permissions = {});

}  // namespace stokend::store
