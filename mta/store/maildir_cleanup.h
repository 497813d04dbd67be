// Removal of stale files from the tmp/ folders of the built-in Maildir store.
//
// Why: a delivery writes its file into tmp/ and renames it into new/
// (maildir_store.h). A crash (kill -9, power loss) between the two leaves the
// file in tmp/ for good: nothing else ever looks there. The Maildir
// convention, which Dovecot follows, is to remove tmp/ files not touched for
// 36 hours; no delivery takes that long, so a file that old is an orphan.
//
// What: under root (ROOT/domain/user/, the layout of maildir_store.h), the
// regular files in every user's tmp/ and in the tmp/ of each of the user's
// Maildir++ folders (ROOT/domain/user/.Folder/tmp/, e.g. .COI.Chats) whose
// mtime is older than max_age. new/, cur/ and everything else is left alone.
//
// At start, the daemon's own unfinished deliveries go at once, whatever
// their age: files whose name carries the delivery prefix
// (is_delivery_tmp_file_name, maildir_layout.h). Only the daemon's
// deliveries write such names, and the daemon runs this after taking its
// spool, before its queue delivers anything, so none of them is still being
// written: each is what a crash cut short, and its message is still in the
// spool (a delivery is recorded only after the rename into new/). Every
// other file in tmp/ may belong to another program sharing the Maildir (an
// IMAP server's APPEND, Dovecot's own deliveries) and keeps the max_age rule.
//
// Contract: never follows a symbolic link below root (root itself may be
// one: it is the operator's configured path), so a link planted in a
// mailbox cannot make it delete files elsewhere; links, folders and other
// non-regular entries in tmp/ are kept. Never throws: every error is logged
// and counted, and the walk goes on with the next folder. Logs one info line
// with the number of files removed. Thread-safe (it keeps no state); it
// blocks on the file system, so the daemon runs it on a worker thread except
// once at start.
#pragma once

#include <chrono>
#include <cstddef>
#include <filesystem>

namespace stokend::store {

struct MaildirCleanupResult {
  std::size_t removed = 0;                        // tmp/ files unlinked (both kinds)
  std::size_t unfinished_deliveries_removed = 0;  // of which the daemon's own, at start
  std::size_t errors = 0;  // folders or files that could not be read or removed (logged)
};

// The periodic run: files older than max_age, whoever wrote them.
MaildirCleanupResult remove_stale_maildir_tmp_files(
    const std::filesystem::path& root, std::chrono::seconds max_age,
    std::chrono::system_clock::time_point now = std::chrono::system_clock::now()) noexcept;

// The run at start: the same, plus the daemon's own delivery files of any
// age. Only while no delivery of this daemon can be running.
MaildirCleanupResult remove_maildir_tmp_files_at_start(
    const std::filesystem::path& root, std::chrono::seconds max_age,
    std::chrono::system_clock::time_point now = std::chrono::system_clock::now()) noexcept;

}  // namespace stokend::store
