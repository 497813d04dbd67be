// Deferred calls on the event loop: a queue drained by a zero-timeout event.
#include "common/deferred_calls.h"

#include <stdexcept>
#include <utility>

namespace stokend {

DeferredCalls::DeferredCalls(event_base* base)
    : ready_event_(evtimer_new(base, &DeferredCalls::on_ready, this)) {
  if (!ready_event_) throw std::runtime_error("cannot create the deferred call event");
}

void DeferredCalls::post(std::function<void()> call) {
  pending_.push_back(std::move(call));
  static constexpr timeval now{0, 0};
  evtimer_add(ready_event_.get(), &now);
}

void DeferredCalls::on_ready(evutil_socket_t, short, void* self) {
  static_cast<DeferredCalls*>(self)->run_pending();
}

void DeferredCalls::run_pending() {
  // Only the calls queued so far: calls posted while these run wait for the
  // next loop iteration, so a chain of cache hits cannot starve the loop.
  std::weak_ptr<char> alive = alive_;
  std::size_t count = pending_.size();
  while (count-- > 0) {
    std::function<void()> call = std::move(pending_.front());
    pending_.pop_front();
    call();
    if (alive.expired()) return;  // the call destroyed this object
  }
}

}  // namespace stokend
