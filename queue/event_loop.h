// What the queue needs from the daemon's event loop: running a task on the
// loop thread (from any thread) and timers.
//
// The queue owns this interface so that it depends on no event library and
// tests can drive it by hand (tests/support/manual_event_loop.h); libevent_loop.h adapts
// the daemon's libevent loop.
//
// Contract: post() may be called from any thread; the task runs later on the
// loop thread, never inside post(). run_after() is called on the loop thread;
// the task runs once on the loop thread after at least `delay`, unless the
// returned Timer is destroyed first (destroying it inside its own task is
// allowed).
#pragma once

#include <chrono>
#include <functional>
#include <memory>

namespace stokend::queue {

class EventLoop {
 public:
  using Task = std::function<void()>;

  class Timer {
   public:
    virtual ~Timer() = default;
  };

  virtual ~EventLoop() = default;
  virtual void post(Task task) = 0;
  virtual std::unique_ptr<Timer> run_after(std::chrono::milliseconds delay, Task task) = 0;
};

}  // namespace stokend::queue
