// An EventLoop driven by hand, with its own clock, for tests.
//
// Tasks posted (from any thread) run when the test calls run_posted() or
// run_until(); timers fire when the test moves the clock with advance().
// now() is the clock to hand to the Spool, Scheduler and QueueManager, so
// five days of retries take no time at all.
#pragma once

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <utility>

#include "queue/event_loop.h"
#include "queue/queued_message.h"

namespace stokend::queue {

class ManualEventLoop final : public EventLoop {
 public:
  explicit ManualEventLoop(TimePoint start = TimePoint(std::chrono::hours(24 * 365 * 56)))
      : now_(start) {}

  void post(Task task) override {
    {
      std::lock_guard lock(mutex_);
      posted_.push_back(std::move(task));
    }
    posted_available_.notify_all();
  }

  std::unique_ptr<Timer> run_after(std::chrono::milliseconds delay, Task task) override {
    auto shared = std::make_shared<Task>(std::move(task));
    timers_.emplace(now_.load() + delay, shared);
    return std::make_unique<ManualTimer>(shared);
  }

  TimePoint now() const { return now_.load(); }
  // Thread-safe, like the system clock: the spool's writer thread reads it.
  std::function<TimePoint()> clock() {
    return [this] { return now_.load(); };
  }

  // Runs every task posted so far (and those they post). Returns how many ran.
  std::size_t run_posted() {
    std::size_t count = 0;
    for (;;) {
      Task task;
      {
        std::lock_guard lock(mutex_);
        if (posted_.empty()) return count;
        task = std::move(posted_.front());
        posted_.pop_front();
      }
      task();
      ++count;
    }
  }

  // Runs posted tasks, waiting (in real time, for other threads) until
  // done() holds or the timeout passes. Returns done().
  bool run_until(const std::function<bool()>& done,
                 std::chrono::milliseconds timeout = std::chrono::seconds(10)) {
    const auto deadline = std::chrono::steady_clock::now() + timeout;
    for (;;) {
      run_posted();
      if (done()) return true;
      std::unique_lock lock(mutex_);
      if (!posted_available_.wait_until(lock, deadline, [this] { return !posted_.empty(); })) {
        lock.unlock();
        run_posted();
        return done();
      }
    }
  }

  // Moves the clock forward, firing due timers in time order (and running
  // what they post).
  void advance(std::chrono::milliseconds duration) {
    const TimePoint target = now_.load() + duration;
    for (;;) {
      run_posted();
      auto next = timers_.begin();
      if (next == timers_.end() || next->first > target) break;
      now_ = std::max(now_.load(), next->first);
      std::shared_ptr<Task> task = next->second;
      timers_.erase(next);
      if (*task) {
        Task run = std::move(*task);
        *task = nullptr;
        run();
      }
    }
    now_ = target;
    run_posted();
  }

  std::size_t pending_timers() const {
    std::size_t count = 0;
    for (const auto& [when, task] : timers_) {
      if (*task) ++count;
    }
    return count;
  }

 private:
  // Cancelling empties the shared task; the entry is dropped when reached.
  struct ManualTimer final : Timer {
    explicit ManualTimer(std::shared_ptr<Task> task) : task(std::move(task)) {}
    ~ManualTimer() override {
      if (task) *task = nullptr;
    }
    std::shared_ptr<Task> task;
  };

  std::atomic<TimePoint> now_;
  std::multimap<TimePoint, std::shared_ptr<Task>> timers_;
  std::mutex mutex_;
  std::condition_variable posted_available_;
  std::deque<Task> posted_;
};

}  // namespace stokend::queue
