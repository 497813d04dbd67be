// See timer.h.
#include "common/timer.h"

#include <stdexcept>

namespace stokend {

Timer::Timer(event_base* base, std::function<void()> on_expiry)
    : on_expiry_(std::move(on_expiry)), event_(evtimer_new(base, &Timer::on_timer, this)) {
  if (!event_) throw std::runtime_error("cannot create a timer event");
}

void Timer::arm(std::chrono::milliseconds delay) {
  const timeval when = to_timeval(delay);
  evtimer_add(event_.get(), &when);
}

void Timer::cancel() { evtimer_del(event_.get()); }

bool Timer::armed() const { return evtimer_pending(event_.get(), nullptr) != 0; }

void Timer::on_timer(evutil_socket_t, short, void* self) {
  // Copy: the callback may destroy the timer's owner.
  auto callback = static_cast<Timer*>(self)->on_expiry_;
  callback();
}

}  // namespace stokend
