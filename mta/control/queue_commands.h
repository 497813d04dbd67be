// What each control request does to the queue, and the answer it gets.
//
// LIST is produced in pieces (QueueListing), so a large queue never stalls
// the event loop for long: reading a message's recipients may read its
// record from the spool. HOLD, RELEASE, DELETE and REQUEUE answer only once
// the queue reports every change durable, for a selection (ALL, @domain) too.
//
// Contract: loop thread only, like the QueueManager. The queue must outlive
// a QueueListing.
#pragma once

#include <cstddef>
#include <functional>
#include <string>
#include <vector>

#include "mta/control/control_protocol.h"
#include "queue/queue_manager.h"

namespace stokend::control {

inline constexpr std::string_view no_such_message = "no such message";

Answer show_message(const queue::QueueManager& queue, const std::string& id);

// An empty id flushes every message.
Answer flush_messages(queue::QueueManager& queue, const std::string& id);

// request.command: hold, release, remove or requeue, of one message or of
// a selection. done may run before this returns.
void change_messages(queue::QueueManager& queue, const Request& request,
                     std::function<void(Answer)> done);

// The ids a selection names, oldest first: every message for ALL; for
// @domain, those with pending recipients all at the domain. not_only_domain
// counts the messages left out because they also have pending recipients
// elsewhere.
std::vector<std::string> selected_messages(const queue::QueueManager& queue, const Request& request,
                                           std::size_t& not_only_domain);

// The LIST body, from a snapshot of the queue's ids taken at construction.
// Messages gone by the time their turn comes are left out.
class QueueListing {
 public:
  explicit QueueListing(const queue::QueueManager& queue);

  // Appends the next messages' blocks (at most max_messages of them) to
  // text; after the last one, the summary. Returns true once complete.
  bool append_next(std::string& text, std::size_t max_messages);

 private:
  const queue::QueueManager& queue_;
  std::vector<std::string> ids_;
  std::size_t next_ = 0;
  std::size_t messages_listed_ = 0;
  std::size_t pending_recipients_ = 0;
  bool complete_ = false;
};

}  // namespace stokend::control
