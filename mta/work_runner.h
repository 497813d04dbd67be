// What a session asks of the worker threads: run this blocking job (a
// password check, a token store write) off the loop, then its completion on
// the loop. WorkerPool (worker_pool.h) implements it; tests use a fake that
// runs jobs inline or on demand (tests/support/).
//
// Contract: submit() is called on the loop thread. The completion the job
// returns (may be empty) runs later on the loop thread, never inside
// submit(); it must check itself whether its session still exists.
#pragma once

#include <functional>

namespace stokend {

class WorkRunner {
 public:
  // A job returns the completion to run on the loop thread (may be empty).
  using Completion = std::function<void()>;
  using Job = std::function<Completion()>;

  virtual ~WorkRunner() = default;
  virtual void submit(Job job) = 0;
};

}  // namespace stokend
