// Delivery into Maildir folders (https://cr.yp.to/proto/maildir.html) with
// the Maildir++ subfolder convention for COI/Chats (the layout and file
// names: maildir_layout.h).
//
// A message is written under a unique name into tmp/ and renamed into new/ by
// the durable-write helper, so a reader never sees a partial message and a
// delivery reported as done survives a crash. Its tmp/ name carries the
// delivery prefix (maildir_layout.h), so that what a crash leaves there is
// recognised as ours and removed at the next start (maildir_cleanup.h).
#include "mta/store/maildir_store.h"

#include <unistd.h>

#include <system_error>
#include <utility>

#include "common/durable_file.h"
#include "mta/store/maildir_layout.h"

namespace stokend::store {
namespace {

DeliveryResult temporary_failure(std::string detail) {
  return DeliveryResult{DeliveryResult::Status::temporary_failure, "", std::move(detail)};
}

DeliveryResult permanent_failure(std::string detail) {
  return DeliveryResult{DeliveryResult::Status::permanent_failure, "", std::move(detail)};
}

std::string describe(std::string_view step, const std::error_code& error) {
  return "maildir delivery failed at " + std::string(step) + ": " + error.message();
}

}  // namespace

MaildirStore::MaildirStore(std::filesystem::path root, std::string hostname,
                           MaildirPermissions permissions)
    : root_(std::move(root)),
      hostname_for_file_names_(sanitise_hostname_for_file_names(hostname)),
      permissions_(permissions) {}

std::filesystem::path MaildirStore::maildir_of(const Recipient& recipient) const {
  std::filesystem::path mailbox = root_ / recipient.domain / recipient.local_part;
  return recipient.chat_folder ? mailbox / chat_folder_name : mailbox;
}

std::string MaildirStore::unique_file_name(std::size_t message_size) const {
  return unique_maildir_file_name(hostname_for_file_names_, message_size);
}

DeliveryResult MaildirStore::deliver(const Recipient& recipient, std::string_view message) {
  if (!is_safe_path_component(recipient.domain)) {
    return permanent_failure("domain cannot be stored as a maildir folder");
  }
  if (!is_safe_path_component(recipient.local_part)) {
    return permanent_failure("local part cannot be stored as a maildir folder");
  }

  const std::filesystem::path mailbox = root_ / recipient.domain / recipient.local_part;
  if (recipient.chat_folder) {
    if (auto made = make_subfolder(mailbox, chat_folder_name, permissions_); !made) {
      return temporary_failure(describe(made.step, made.error));
    }
  } else if (std::error_code error = make_maildir(mailbox, permissions_)) {
    return temporary_failure(describe("mkdir", error));
  }
  const std::filesystem::path maildir = maildir_of(recipient);

  // RFC 9228 §4: the field goes above the message, with the trace fields.
  const std::string delivered_to =
      recipient.delivered_to.empty() ? "" : "Delivered-To: " + recipient.delivered_to + "\r\n";
  const std::string name = unique_file_name(delivered_to.size() + message.size());
  const std::filesystem::path final_path = maildir / "new" / name;
  const std::string_view parts[] = {delivered_to, message};
  const durable::WriteResult written = durable::write_file(
      maildir / "tmp" / delivery_tmp_file_name(name), final_path, parts, 0600, permissions_.files);
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
