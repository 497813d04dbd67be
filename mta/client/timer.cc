// See timer.h.
#include "mta/client/timer.h"

namespace stokend::client {

Timer::Timer(event_base* base, std::function<void()> on_expiry)
    : on_expiry_(std::move(on_expiry)), event_(evtimer_new(base, &Timer::on_timer, this)) {}

void Timer::arm(std::chrono::milliseconds delay) {
  timeval when{};
  when.tv_sec = static_cast<time_t>(delay.count() / 1000);
  when.tv_usec = static_cast<suseconds_t>((delay.count() % 1000) * 1000);
  evtimer_add(event_.get(), &when);
}

void Timer::cancel() { evtimer_del(event_.get()); }

bool Timer::armed() const { return evtimer_pending(event_.get(), nullptr) != 0; }

void Timer::on_timer(evutil_socket_t, short, void* self) {
  // Copy: the callback may destroy the timer's owner.
  auto callback = static_cast<Timer*>(self)->on_expiry_;
  callback();
}

DeferredCalls::DeferredCalls(event_base* base) : timer_(base, [this] { run_posted(); }) {}

void DeferredCalls::post(std::function<void()> call) {
  posted_.push_back(std::move(call));
  if (!timer_.armed()) timer_.arm(std::chrono::milliseconds(0));
}

void DeferredCalls::run_posted() {
  // Calls posted while these run wait for the next iteration.
  auto calls = std::move(posted_);
  posted_.clear();
  for (auto& call : calls) call();
}

}  // namespace stokend::client
