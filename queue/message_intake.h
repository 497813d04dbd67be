// The one thing a receiving session asks of the queue: take this message.
// QueueManager implements it; tests use a fake (tests/support/).
//
// Contract: enqueue() is called on the loop thread and `done` runs there,
// once. EnqueueResult is empty (true) only once the message is durable
// (spool.h: written and synced), so that the session may send its 250.
#pragma once

#include <functional>
#include <string>
#include <system_error>

#include "queue/queued_message.h"

namespace stokend::queue {

struct EnqueueResult {
  std::error_code error;  // empty: durable, send 250
  std::string id;         // the queue id, for the reply text and logs
  explicit operator bool() const { return !error; }
};

class MessageIntake {
 public:
  using EnqueueDone = std::function<void(EnqueueResult)>;
  virtual ~MessageIntake() = default;
  // data: as received, CRLF line endings (with our Received header).
  virtual void enqueue(Envelope envelope, std::string data, EnqueueDone done) = 0;
};

}  // namespace stokend::queue
