// How the queue hands a message to whatever delivers it.
//
// The queue owns this interface and the daemon implements it (mailstore,
// remote MX, the token fast lane), so that the queue depends on nothing of
// the daemon.
//
// Contract: deliver() is called on the loop thread. The agent must call
// `done` exactly once, on the loop thread (it may do so before deliver()
// returns), with one result per recipient, in the order given. `message`
// and `recipients` are valid only during the call: copy what is needed
// (message.data is a shared pointer and cheap to keep). A recipient's result
// must be reported as soon as the next hop has answered for it: the queue
// records it durably at once, which is what keeps a crash from delivering it
// twice.
#pragma once

#include <functional>
#include <span>
#include <string>
#include <vector>

#include "common/service_log.h"
#include "queue/queued_message.h"

namespace stokend::queue {

struct RecipientResult {
  enum class Outcome { delivered, temporary_failure, permanent_failure };
  Outcome outcome = Outcome::temporary_failure;
  // The reply that decided it, as the next hop sent it (lines joined with
  // spaces), e.g. "250 2.0.0 Ok: queued as 4F2" or "550 5.1.1 <a@b>: no such
  // user"; for failures without a remote reply, a description such as "connect
  // to mx.example.org: Connection refused". Reported in bounces.
  std::string reply;
  // The id the mailstore gave the stored copy (Maildir file name, Dovecot's
  // id), when delivered into a mailstore; empty otherwise. The Token Server
  // returns it in its 2.1.12 / 2.1.13 replies.
  std::string delivery_id;
  // For a delivered recipient: where it went, which decides whether a
  // requested success report says "delivered", "relayed" or is left to the
  // next hop (RFC 3461 §5.2.3). Agents that know no better leave "relayed".
  Handoff handoff = Handoff::relayed;
  // For the log's to= line (common/log_lines.h): who delivered it, and where
  // ("local", "mx.example.org[192.0.2.7]:25"; "none" when no peer answered).
  Service service = Service::smtp;
  std::string relay = "none";
};

class DeliveryAgent {
 public:
  using Done = std::function<void(std::vector<RecipientResult>)>;

  virtual ~DeliveryAgent() = default;
  virtual void deliver(const QueuedMessage& message, std::span<const std::string> recipients,
                       Done done) = 0;
};

}  // namespace stokend::queue
