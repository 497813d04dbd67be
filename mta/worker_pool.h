// A fixed set of threads for blocking work (password hashing, fsync-heavy
// mailstore writes), with completions delivered back on the event loop.
//
// Contract: submit() may only be called from the loop thread. The job runs on
// a worker thread; its completion then runs on the loop thread. Completions
// must check themselves whether their session still exists (capture a
// weak_ptr). stop() lets running jobs finish, drops queued ones, and joins.
#pragma once

#include <condition_variable>
#include <deque>
#include <functional>
#include <mutex>
#include <thread>
#include <vector>

#include "common/event_handles.h"
#include "mta/work_runner.h"

namespace stokend {

class WorkerPool : public WorkRunner {
 public:
  WorkerPool(event_base* base, unsigned thread_count);
  ~WorkerPool() override;
  WorkerPool(const WorkerPool&) = delete;
  WorkerPool& operator=(const WorkerPool&) = delete;

  void submit(Job job) override;
  void stop();
  std::size_t pending() const;  // queued + running jobs, for shutdown

 private:
  void run_worker();
  static void on_completions_ready(evutil_socket_t, short, void* self);

  mutable std::mutex mutex_;
  std::condition_variable work_available_;
  std::deque<Job> jobs_;
  std::vector<Completion> completions_;
  std::size_t running_ = 0;
  bool stopping_ = false;
  EventPtr completion_event_;
  std::vector<std::thread> threads_;
};

}  // namespace stokend
