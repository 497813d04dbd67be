// The built-in mailstore: one Maildir per local user, under a root folder.
//
// Layout (maildir_layout.h): the mailbox of local@domain is
// ROOT/domain/local/ (a Maildir with tmp/, new/, cur/, created on first
// delivery). Chat mail for a user whose COI filter is active goes to the
// Maildir++ subfolder ROOT/domain/local/.COI.Chats/ (the IMAP folder
// COI/Chats with '.' as separator), which has its own tmp/, new/, cur/ and
// an empty maildirfolder marker file.
//
// Contract (see mailstore.h): deliver() returns delivered only once the
// message is in new/, fsynced, with new/ fsynced; the delivery id is the file
// name. File-system errors are temporary failures and leave nothing in the
// mailbox; a local part or domain that could name a place outside the root is
// a permanent failure. Thread-safe.
#pragma once

#include <filesystem>
#include <string>
#include <string_view>

#include "mta/store/maildir_layout.h"
#include "mta/store/mailstore.h"

namespace stokend::store {

class MaildirStore : public Mailstore {
 public:
  // root: the folder holding one folder per domain. hostname: ours, part of
  // every file name (Maildir uniqueness across machines sharing a store).
  // permissions: owner and modes of what the store creates (the
  // configuration's `maildir:` section).
  MaildirStore(std::filesystem::path root, std::string hostname,
               MaildirPermissions permissions = {});

  DeliveryResult deliver(const Recipient& recipient, std::string_view message) override;

  // The Maildir a recipient's message goes to (the chat folder when
  // recipient.chat_folder is set). Only meaningful for recipients that
  // deliver() would accept.
  std::filesystem::path maildir_of(const Recipient& recipient) const;

 private:
  std::string unique_file_name(std::size_t message_size) const;

  std::filesystem::path root_;
  std::string hostname_for_file_names_;
  MaildirPermissions permissions_;
};

}  // namespace stokend::store
