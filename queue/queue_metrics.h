// The queue's metrics (common/metrics.h): how long the spool's group-commit
// sync takes, and how long a message waits from its acceptance to its
// delivery.
//
// Contract: queue_metrics() registers both histograms in the default
// registry the first time it is called (the daemon calls it at start, so a
// scrape shows them before the first message) and returns the same handles
// afterwards; observing is one relaxed atomic add, safe on any thread (the
// spool's writer thread observes fsyncs).
#pragma once

#include "common/metrics.h"

namespace stokend::queue {

struct QueueMetrics {
  // fdatasync(2) of the active segment, one per group commit.
  metrics::Histogram& spool_fsync_seconds;
  // From the acceptance (the spool's arrival time) to a recipient's delivery.
  metrics::Histogram& delivery_latency_seconds;
};

QueueMetrics& queue_metrics();

}  // namespace stokend::queue
