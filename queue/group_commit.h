// Group commit: many writers' changes made durable by one sync.
//
// Jobs are submitted on the loop thread and run in submission order on one
// writer thread. The writer takes every job waiting, performs them all (each
// writes without syncing), then calls commit() once for the whole batch, and
// hands all their completions back to the loop thread in one posted task.
// Jobs submitted while the batch is being performed join it before its
// commit (up to max_join_rounds more takes, so a steady stream cannot put
// the commit off): a delivery outcome reported then shares that sync rather
// than waiting for the next one. While a batch is being synced, new jobs
// gather for the next one, so the number of syncs adapts to the load: one
// per job when idle, one for many under load, with no added waiting.
//
// A job submitted with Urgency::may_wait does not start a batch: it waits
// for the next job that cannot wait and is performed and committed with it
// (in submission order all the same), or for max_wait to pass.
//
// Contract: completions run on the loop thread, in submission order, each
// with the batch's commit error (or none). stop() performs and commits every
// job already submitted, posts their completions, and joins the thread; jobs
// submitted after stop() are refused (their completion is posted with
// operation_canceled).
#pragma once

#include <chrono>
#include <condition_variable>
#include <cstddef>
#include <deque>
#include <functional>
#include <mutex>
#include <system_error>
#include <thread>

#include "queue/event_loop.h"
#include "queue/queue_defaults.h"

namespace stokend::queue {

class GroupCommitter {
 public:
  using Perform = std::function<void()>;                  // writer thread
  using Complete = std::function<void(std::error_code)>;  // loop thread
  using Commit = std::function<std::error_code()>;        // writer thread, once per batch

  struct Statistics {
    std::size_t batches = 0;
    std::size_t jobs = 0;
    std::size_t largest_batch = 0;
  };

  // How often, after performing a batch, the writer takes the jobs that
  // arrived meanwhile into it before committing.
  static constexpr int max_join_rounds = 4;

  enum class Urgency { now, may_wait };

  GroupCommitter(EventLoop& loop, Commit commit,
                 std::chrono::milliseconds max_wait = defaults::removal_sync_delay);
  ~GroupCommitter();
  GroupCommitter(const GroupCommitter&) = delete;
  GroupCommitter& operator=(const GroupCommitter&) = delete;

  void submit(Perform perform, Complete complete, Urgency urgency = Urgency::now);
  void stop();
  Statistics statistics() const;

 private:
  using Clock = std::chrono::steady_clock;
  struct Job {
    Perform perform;
    Complete complete;
    Clock::time_point submitted;
  };
  void run();
  // Waits until a batch should start; false when stopping with nothing left.
  bool wait_for_batch(std::unique_lock<std::mutex>& lock);

  EventLoop& loop_;
  Commit commit_;
  std::chrono::milliseconds max_wait_;
  std::size_t urgent_waiting_ = 0;  // jobs in jobs_ that cannot wait
  mutable std::mutex mutex_;
  std::condition_variable work_available_;
  std::deque<Job> jobs_;
  bool stopping_ = false;
  Statistics statistics_;
  std::thread thread_;
};

}  // namespace stokend::queue
