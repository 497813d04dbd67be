// See queue_metrics.h. The buckets: a sync takes tens of microseconds on a
// fast SSD and tens of milliseconds on a disk that is busy; a delivery takes
// milliseconds into a mailstore, and up to days when it is retried.
#include "queue/queue_metrics.h"

#include <array>

namespace stokend::queue {
namespace {

constexpr std::array<double, 14> fsync_bounds = {
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5};
constexpr std::array<double, 18> delivery_bounds = {0.001, 0.0025, 0.005, 0.01, 0.025, 0.05,
                                                    0.1,   0.25,   0.5,   1,    2.5,   5,
                                                    10,    30,     60,    300,  3600,  86400};

}  // namespace

QueueMetrics& queue_metrics() {
  static QueueMetrics instruments{
      metrics::default_registry().histogram(
          "stokend_spool_fsync_seconds",
          "Time one group commit's fdatasync of the spool took, in seconds.", fsync_bounds),
      metrics::default_registry().histogram(
          "stokend_delivery_latency_seconds",
          "Time from a message's acceptance to a recipient's delivery, in seconds.",
          delivery_bounds)};
  return instruments;
}

}  // namespace stokend::queue
