// A one-shot timer on the libevent loop that runs a std::function.
//
// Contract: the callback runs on the loop thread, at most once per arm().
// Destroying the timer cancels it. Not movable: libevent holds its address.
#pragma once

#include <chrono>
#include <functional>
#include <vector>

#include "mta/event_handles.h"

namespace stokend::client {

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

// Runs callbacks on the next loop iteration, in the order they were posted,
// so that an API never calls back into its caller from inside the call.
class DeferredCalls {
 public:
  explicit DeferredCalls(event_base* base);
  void post(std::function<void()> call);

 private:
  void run_posted();

  std::vector<std::function<void()>> posted_;
  Timer timer_;
};

}  // namespace stokend::client
