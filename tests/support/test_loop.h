// The libevent loop of a unit test, run in bounded slices: run_until() gives
// up after a limit instead of hanging the test binary, and a ticking timer
// keeps EVLOOP_ONCE from blocking forever when nothing else is pending.
//
// Contract: everything runs on the calling thread. The destructor stops the
// tick and runs what is left (for at most 5 seconds), so that connections
// can finish their QUIT and nothing outlives the test; objects with events
// on the loop must be destroyed before it.
#pragma once

#include <event2/event.h>
#include <event2/thread.h>

#include <chrono>
#include <thread>
#include <utility>

#include "common/event_handles.h"

namespace stokend::testing {

// A base whose events other threads may activate (the spool's writer thread
// and LibeventLoop::post do), as the daemon makes it.
inline EventBasePtr new_thread_safe_base() {
  evthread_use_pthreads();
  return EventBasePtr(event_base_new());
}

class TestLoop {
 public:
  explicit TestLoop(EventBasePtr base = EventBasePtr(event_base_new()),
                    std::chrono::milliseconds tick = std::chrono::milliseconds(10))
      : base_(std::move(base)) {
    tick_.reset(event_new(
        base_.get(), -1, EV_PERSIST, [](evutil_socket_t, short, void*) {}, nullptr));
    const auto micros = std::chrono::duration_cast<std::chrono::microseconds>(tick).count();
    const timeval interval{static_cast<time_t>(micros / 1'000'000),
                           static_cast<suseconds_t>(micros % 1'000'000)};
    event_add(tick_.get(), &interval);
  }
  ~TestLoop() {
    tick_.reset();
    drain();
  }
  TestLoop(const TestLoop&) = delete;
  TestLoop& operator=(const TestLoop&) = delete;

  event_base* base() const { return base_.get(); }

  // Runs the loop until done() is true or the limit passes; returns done().
  template <typename Done>
  bool run_until(Done done, std::chrono::milliseconds limit = std::chrono::seconds(10)) {
    const auto deadline = std::chrono::steady_clock::now() + limit;
    while (!done() && std::chrono::steady_clock::now() < deadline) {
      event_base_loop(base_.get(), EVLOOP_ONCE);
    }
    return done();
  }

  // Runs the loop for a while, for tests that check that nothing happens.
  void run_for(std::chrono::milliseconds duration) {
    const auto deadline = std::chrono::steady_clock::now() + duration;
    run_until([&] { return std::chrono::steady_clock::now() >= deadline; },
              duration + std::chrono::seconds(1));
  }

  // Runs until no event but the tick is left (or 5 seconds).
  void drain() {
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(5);
    while (std::chrono::steady_clock::now() < deadline) {
      const int pending =
          event_base_get_num_events(base_.get(), EVENT_BASE_COUNT_ADDED | EVENT_BASE_COUNT_ACTIVE);
      if (pending <= (tick_ ? 1 : 0)) return;
      event_base_loop(base_.get(), EVLOOP_ONCE | EVLOOP_NONBLOCK);
      std::this_thread::sleep_for(std::chrono::milliseconds(1));
    }
  }

 private:
  EventBasePtr base_;
  EventPtr tick_;
};

}  // namespace stokend::testing
