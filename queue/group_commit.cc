// Group commit writer thread: see group_commit.h.
#include "queue/group_commit.h"

#include <algorithm>
#include <iterator>
#include <memory>
#include <utility>
#include <vector>

namespace stokend::queue {

GroupCommitter::GroupCommitter(EventLoop& loop, Commit commit)
    : loop_(loop), commit_(std::move(commit)), thread_([this] { run(); }) {}

GroupCommitter::~GroupCommitter() { stop(); }

void GroupCommitter::submit(Perform perform, Complete complete) {
  {
    std::lock_guard lock(mutex_);
    if (!stopping_) {
      jobs_.push_back(Job{std::move(perform), std::move(complete)});
      work_available_.notify_one();
      return;
    }
  }
  loop_.post([complete = std::move(complete)] {
    complete(std::make_error_code(std::errc::operation_canceled));
  });
}

void GroupCommitter::stop() {
  {
    std::lock_guard lock(mutex_);
    stopping_ = true;
  }
  work_available_.notify_all();
  if (thread_.joinable()) thread_.join();
}

GroupCommitter::Statistics GroupCommitter::statistics() const {
  std::lock_guard lock(mutex_);
  return statistics_;
}

void GroupCommitter::run() {
  for (;;) {
    std::deque<Job> batch;
    {
      std::unique_lock lock(mutex_);
      work_available_.wait(lock, [this] { return stopping_ || !jobs_.empty(); });
      if (jobs_.empty()) return;  // stopping, and every job is done
      batch.swap(jobs_);
      ++statistics_.batches;
    }
    std::size_t performed = 0;
    for (int round = 0;; ++round) {
      for (; performed < batch.size(); ++performed) {
        if (batch[performed].perform) batch[performed].perform();
      }
      // Jobs that arrived while performing share this commit (they follow
      // every job already in the batch, so the order is kept).
      std::lock_guard lock(mutex_);
      if (jobs_.empty() || round == max_join_rounds) {
        statistics_.jobs += batch.size();
        statistics_.largest_batch = std::max(statistics_.largest_batch, batch.size());
        break;
      }
      std::move(jobs_.begin(), jobs_.end(), std::back_inserter(batch));
      jobs_.clear();
    }
    const std::error_code commit_error = commit_();
    auto completions = std::make_shared<std::vector<Complete>>();
    completions->reserve(batch.size());
    for (Job& job : batch) completions->push_back(std::move(job.complete));
    loop_.post([completions, commit_error] {
      for (Complete& complete : *completions) {
        if (complete) complete(commit_error);
      }
    });
  }
}

}  // namespace stokend::queue
