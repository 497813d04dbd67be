// See worker_pool.h. Completions are handed over under the mutex and a single
// persistent event is activated from the worker thread (libevent is set up
// with evthread_use_pthreads(), which makes event_active thread-safe).
#include "mta/worker_pool.h"

#include <utility>

namespace stokend {

WorkerPool::WorkerPool(event_base* base, unsigned thread_count)
    : completion_event_(event_new(base, -1, EV_PERSIST, &WorkerPool::on_completions_ready, this)) {
  if (thread_count == 0) thread_count = 1;
  threads_.reserve(thread_count);
  for (unsigned i = 0; i < thread_count; ++i) threads_.emplace_back([this] { run_worker(); });
}

WorkerPool::~WorkerPool() { stop(); }

void WorkerPool::submit(Job job) {
  {
    std::lock_guard lock(mutex_);
    if (stopping_) return;
    jobs_.push_back(std::move(job));
  }
  work_available_.notify_one();
}

std::size_t WorkerPool::pending() const {
  std::lock_guard lock(mutex_);
  return jobs_.size() + running_ + completions_.size();
}

void WorkerPool::stop() {
  {
    std::lock_guard lock(mutex_);
    if (stopping_ && threads_.empty()) return;
    stopping_ = true;
    jobs_.clear();
  }
  work_available_.notify_all();
  for (auto& thread : threads_) thread.join();
  threads_.clear();
}

void WorkerPool::run_worker() {
  for (;;) {
    Job job;
    {
      std::unique_lock lock(mutex_);
      work_available_.wait(lock, [this] { return stopping_ || !jobs_.empty(); });
      if (jobs_.empty()) return;  // stopping and nothing left
      job = std::move(jobs_.front());
      jobs_.pop_front();
      ++running_;
    }
    Completion completion = job();
    bool wake_loop = false;
    {
      std::lock_guard lock(mutex_);
      --running_;
      if (completion) {
        wake_loop = completions_.empty();
        completions_.push_back(std::move(completion));
      }
    }
    if (wake_loop) event_active(completion_event_.get(), EV_READ, 0);
  }
}

void WorkerPool::on_completions_ready(evutil_socket_t, short, void* self) {
  auto* pool = static_cast<WorkerPool*>(self);
  std::vector<Completion> ready;
  {
    std::lock_guard lock(pool->mutex_);
    ready.swap(pool->completions_);
  }
  for (auto& completion : ready) completion();
}

}  // namespace stokend
