// Final delivery into Dovecot (or any LMTP server, RFC 2033) over a pooled
// LMTP connection: one transaction carries every recipient of a message,
// and each recipient gets its own result from its own reply after DATA.
//
// Contract:
// - Asynchronous, on the loop thread (unlike the synchronous Mailstore
//   interface): deliver() returns at once and `done` runs later on the loop
//   thread with one DeliveryResult per recipient, in the same order.
// - The RCPT address is local_part@domain; Dovecot maps it to its user
//   (auth_username_format = %Ln strips the domain).
// - delivered: the server's 250 for that recipient, which Dovecot sends only
//   once the message is committed; delivery_id is the id Dovecot gives in
//   "250 2.0.0 <rcpt> <id> Saved". 4xx or a connection failure: temporary;
//   5xx: permanent. detail carries the server's reply or the failure.
// - A failure before the message was sent, on a connection that had been
//   reused, is retried once on a fresh connection: an idle pooled
//   connection may have been closed by the server just before.
// - The pool must outlive the deliveries in progress.
#pragma once

#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "common/destination.h"
#include "mta/client/connection_pool.h"
#include "mta/store/mailstore.h"

namespace stokend::store {

class LmtpStore {
 public:
  using DeliveryCallback = std::function<void(std::vector<DeliveryResult>)>;

  // destination: an LMTP destination (TCP or unix socket). Its TLS policy
  // applies as given; a local socket normally uses TlsPolicy::never.
  LmtpStore(client::ConnectionPool& pool, Destination destination);

  // sender: the reverse-path mailbox without brackets, empty for "<>".
  // message: the full message, CRLF line endings.
  void deliver(const std::vector<Recipient>& recipients, std::shared_ptr<const std::string> message,
               std::string sender, DeliveryCallback done);

  const Destination& destination() const { return destination_; }

 private:
  client::ConnectionPool& pool_;
  Destination destination_;
};

// The delivery id in Dovecot's "<rcpt> <id> Saved" reply text, or empty.
std::string lmtp_delivery_id(const std::string& reply_text);

}  // namespace stokend::store
