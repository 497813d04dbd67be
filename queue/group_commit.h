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
// Contract: completions run on the loop thread, in submission order, each
// with the batch's commit error (or none). stop() performs and commits every
// job already submitted, posts their completions, and joins the thread; jobs
// submitted after stop() are refused (their completion is posted with
// operation_canceled).
#pragma once

#include <condition_variable>
#include <cstddef>
#include <deque>
#include <functional>
#include <mutex>
#include <system_error>
#include <thread>

#include "queue/event_loop.h"

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

  GroupCommitter(EventLoop& loop, Commit commit);
  ~GroupCommitter();
  GroupCommitter(const GroupCommitter&) = delete;
  GroupCommitter& operator=(const GroupCommitter&) = delete;

  void submit(Perform perform, Complete complete);
  void stop();
  Statistics statistics() const;

 private:
  struct Job {
    Perform perform;
    Complete complete;
  };
  void run();

  EventLoop& loop_;
  Commit commit_;
  mutable std::mutex mutex_;
  std::condition_variable work_available_;
  std::deque<Job> jobs_;
  bool stopping_ = false;
  Statistics statistics_;
  std::thread thread_;
};

}  // namespace stokend::queue
