// DeferredCalls: runs callbacks later on the event loop, so that an answer
// known at once (a cache hit, a preset answer, an early failure) still
// reaches its caller asynchronously and never inside the call that asked.
//
// Contract: post() only on the loop thread. Posted calls run in order on a
// later loop iteration, through a zero-timeout event. Calls still pending when
// the DeferredCalls is destroyed never run, and a call may destroy the
// DeferredCalls that runs it (the rest of that batch is then dropped).
#pragma once

#include <deque>
#include <functional>
#include <memory>

#include "common/event_handles.h"

namespace stokend {

class DeferredCalls {
 public:
  explicit DeferredCalls(event_base* base);
  DeferredCalls(const DeferredCalls&) = delete;
  DeferredCalls& operator=(const DeferredCalls&) = delete;

  void post(std::function<void()> call);

 private:
  static void on_ready(evutil_socket_t, short, void* self);
  void run_pending();

  std::deque<std::function<void()>> pending_;
  // Expires when this object is destroyed; run_pending() checks it after
  // every call, since that call may have destroyed this object.
  std::shared_ptr<char> alive_ = std::make_shared<char>();
  EventPtr ready_event_;
};

}  // namespace stokend
