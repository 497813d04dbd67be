// The one durable-write helper: every file stokend must not lose or half-write
// (spool entries, Maildir messages, users file, secrets) goes through here.
//
// Contract: after a successful return the file exists at final_path with
// exactly the given contents and survives a crash: the data is written to a
// temporary file, fsynced, renamed over final_path, and the folder holding
// final_path is fsynced. On a failure up to and including the rename the
// temporary file is removed and final_path is untouched; the error says which
// step failed. The one exception is step "fsync-dir": the rename has already
// happened, so final_path holds the new contents but may not survive a crash;
// a caller that wrote under a fresh name (a Maildir delivery) removes it.
#pragma once

#include <sys/types.h>

#include <filesystem>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <system_error>

namespace stokend::durable {

struct WriteResult {
  std::error_code error;  // empty on success
  // "open", "chown", "chmod", "write", "fsync", "close", "rename", "fsync-dir" on failure
  std::string step;
  explicit operator bool() const { return !error; }
};

// Who a file or folder a write creates belongs to, and its exact mode, for
// files another user's program reads (a Maildir shared with an IMAP
// server). Set before the name becomes visible, so a reader never sees it
// with other permissions. -1 keeps the process's id; chown(2) rules apply
// (root may give a file to anyone, a user only to a group it belongs to).
struct Ownership {
  uid_t user = static_cast<uid_t>(-1);
  gid_t group = static_cast<gid_t>(-1);
  std::optional<unsigned> mode;  // exact, whatever the umask; empty: the usual mode less the umask
};

// Writes the concatenation of parts to temporary_path, fsyncs it, renames it
// to final_path and fsyncs final_path's folder. temporary_path must be on the
// same file system (e.g. Maildir tmp/ → new/) and must not exist yet. mode
// is the new file's mode (the process umask applies, as for open(2)),
// unless ownership names one.
WriteResult write_file(const std::filesystem::path& temporary_path,
                       const std::filesystem::path& final_path,
                       std::span<const std::string_view> parts, unsigned mode = 0600,
                       const Ownership& ownership = {});

// Replaces final_path atomically, with a temporary file beside it
// (final_path + ".tmp.<pid>.<counter>").
WriteResult replace_file(const std::filesystem::path& final_path, std::string_view contents,
                         unsigned mode = 0600);

// fsyncs a folder, so that a rename or creation inside it is durable.
std::error_code sync_directory(const std::filesystem::path& directory);

// Building blocks for callers that batch many writes under one sync (the
// spool's group commit): write_file() above is one write plus two syncs.

// Writes every byte of parts at the descriptor's current position (the end,
// for O_APPEND), resuming after short writes and EINTR. Does not sync.
std::error_code write_all(int descriptor, std::span<const std::string_view> parts);

// fdatasync(2), retried on EINTR: makes the file's data, and the metadata
// needed to read it back (its size after an append), durable.
std::error_code sync_data(int descriptor);

// Creates a folder and its parents (mode 0700 for new ones, or ownership's),
// fsyncing each parent whose entries changed. Folders that exist keep their
// owner and mode.
std::error_code make_directories(const std::filesystem::path& directory,
                                 const Ownership& ownership = {});

}  // namespace stokend::durable
