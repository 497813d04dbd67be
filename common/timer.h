// Timer: a one-shot timer on the libevent loop that runs a std::function.
//
// Contract: the callback runs on the loop thread, at most once per arm().
// Destroying the timer cancels it. Not movable: libevent holds its address.
// The callback is copied before it runs, so it may destroy the timer (or the
// object owning it).
#pragma once

#include <chrono>
#include <functional>

#include "common/event_handles.h"

namespace stokend {

class Timer {
 public:
  Timer(event_base* base, std::function<void()> on_expiry);
  Timer(const Timer&) = delete;
  Timer& operator=(const Timer&) = delete;

  void arm(std::chrono::milliseconds delay);  // re-arming replaces the earlier delay
  void cancel();
  bool armed() const;

 private:
  static void on_timer(evutil_socket_t, short, void* self);

  std::function<void()> on_expiry_;
  EventPtr event_;
};

}  // namespace stokend
