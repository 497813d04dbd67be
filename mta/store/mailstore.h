// The Mailstore interface: final delivery of one message to one local user.
//
// Contract: deliver() returns only once the message is committed (for the
// built-in Maildir: written, fsynced, renamed into new/, folder fsynced). It
// may block and is called from worker threads, so implementations must be
// thread-safe. On failure nothing is left visible in the mailbox.
#pragma once

#include <string>
#include <string_view>

namespace stokend::store {

struct Recipient {
  std::string local_part;    // lowercase, as stored in the users file
  std::string domain;        // lowercase
  bool chat_folder = false;  // deliver into COI/Chats (chat mail, COI filter active)
  // The address the message was delivered to when it is not the mailbox's
  // own (alice+news@ for alice's mailbox): written in a Delivered-To field
  // above the message (RFC 9228), as Postfix's local delivery does. Empty:
  // none added.
  std::string delivered_to = {};
};

struct DeliveryResult {
  enum class Status { delivered, temporary_failure, permanent_failure };
  Status status = Status::temporary_failure;
  std::string delivery_id;  // e.g. the Maildir file name; empty on failure
  std::string detail;       // human-readable reason on failure
};

class Mailstore {
 public:
  virtual ~Mailstore() = default;
  // message: the full message as it is to be stored, CRLF line endings.
  virtual DeliveryResult deliver(const Recipient& recipient, std::string_view message) = 0;
};

}  // namespace stokend::store
