// EventLoop on a libevent event_base, for the daemon.
//
// Header-only on purpose: the queue library itself does not depend on
// libevent; the daemon, which links it, includes this file.
//
// Contract: as EventLoop. post() is thread-safe because the daemon enables
// evthread_use_pthreads() before creating the base, which makes
// event_active() safe from other threads. Tasks still pending when this
// object is destroyed are dropped; it must outlive everything that posts to
// it (the Spool's writer thread is joined by Spool::close()).
#pragma once

#include <event2/event.h>

#include <chrono>
#include <memory>
#include <mutex>
#include <utility>
#include <vector>

#include "queue/event_loop.h"

namespace stokend::queue {

class LibeventLoop final : public EventLoop {
 public:
  explicit LibeventLoop(event_base* base)
      : base_(base),
        posted_event_(event_new(base, -1, EV_PERSIST, &LibeventLoop::run_posted, this)) {}
  LibeventLoop(const LibeventLoop&) = delete;
  LibeventLoop& operator=(const LibeventLoop&) = delete;

  void post(Task task) override {
    bool wake = false;
    {
      std::lock_guard lock(mutex_);
      wake = posted_.empty();
      posted_.push_back(std::move(task));
    }
    if (wake) event_active(posted_event_.get(), EV_READ, 0);
  }

  std::unique_ptr<Timer> run_after(std::chrono::milliseconds delay, Task task) override {
    auto timer = std::make_unique<LibeventTimer>(std::move(task));
    timer->event.reset(event_new(base_, -1, 0, &LibeventTimer::fire, timer.get()));
    const auto milliseconds = std::max<std::chrono::milliseconds::rep>(0, delay.count());
    timeval when{static_cast<decltype(timeval::tv_sec)>(milliseconds / 1000),
                 static_cast<decltype(timeval::tv_usec)>((milliseconds % 1000) * 1000)};
    event_add(timer->event.get(), &when);
    return timer;
  }

 private:
  struct FreeEvent {
    void operator()(event* pointer) const {
      if (pointer) event_free(pointer);
    }
  };
  using EventPointer = std::unique_ptr<event, FreeEvent>;

  struct LibeventTimer final : Timer {
    explicit LibeventTimer(Task task) : task(std::move(task)) {}
    static void fire(evutil_socket_t, short, void* self) {
      // Moved out first: the task may destroy this timer.
      Task task = std::move(static_cast<LibeventTimer*>(self)->task);
      if (task) task();
    }
    EventPointer event;
    Task task;
  };

  static void run_posted(evutil_socket_t, short, void* self) {
    auto* loop = static_cast<LibeventLoop*>(self);
    std::vector<Task> ready;
    {
      std::lock_guard lock(loop->mutex_);
      ready.swap(loop->posted_);
    }
    for (Task& task : ready) task();
  }

  event_base* base_;
  std::mutex mutex_;
  std::vector<Task> posted_;
  EventPointer posted_event_;
};

}  // namespace stokend::queue
