// Housekeeping that runs on a worker thread every `interval` (it touches the
// disk, which must not stall the loop): expired tokens leaving the token
// store, stale Maildir tmp/ files.
//
// Contract: the job's own errors are its to log. A PeriodicJob stays where
// it was built (its timer points at it) and must not outlive the event base
// or the worker pool.
#pragma once

#include <chrono>
#include <functional>

#include "common/event_handles.h"
#include "mta/worker_pool.h"

namespace stokend::wiring {

class PeriodicJob {
 public:
  // Runs work every interval from now on.
  PeriodicJob(event_base* base, std::chrono::seconds interval, WorkerPool& workers,
              std::function<void()> work);
  PeriodicJob(const PeriodicJob&) = delete;
  PeriodicJob& operator=(const PeriodicJob&) = delete;

  // Hands the job to a worker now (the timer keeps its schedule).
  void run();

 private:
  static void on_timer(evutil_socket_t, short, void* self);

  WorkerPool& workers_;
  std::function<void()> work_;
  EventPtr timer_;
};

}  // namespace stokend::wiring
