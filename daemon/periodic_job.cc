// See periodic_job.h.
#include "daemon/periodic_job.h"

#include <utility>

namespace stokend::wiring {

PeriodicJob::PeriodicJob(event_base* base, std::chrono::seconds interval, WorkerPool& workers,
                         std::function<void()> work)
    : workers_(workers), work_(std::move(work)) {
  timer_.reset(event_new(base, -1, EV_PERSIST, &PeriodicJob::on_timer, this));
  auto when = to_timeval(interval);
  evtimer_add(timer_.get(), &when);
}

void PeriodicJob::on_timer(evutil_socket_t, short, void* self) {
  static_cast<PeriodicJob*>(self)->run();
}

void PeriodicJob::run() {
  workers_.submit([work = work_]() {
    work();
    return WorkerPool::Completion{};
  });
}

}  // namespace stokend::wiring
