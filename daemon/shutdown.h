// Stopping cleanly on SIGTERM or SIGINT: no new connections, sessions asked
// to finish their current work, the loop left once everything has drained
// (at most shutdown_grace); a second signal stops at once. After the loop,
// serve() closes what is left in order. The service manager hears READY=1
// when serve() starts the loop and STOPPING=1 at the first signal
// (service_notify.h).
//
// Contract: a ShutdownState names every component the daemon built; all
// pointers are set and outlive the loop. ShutdownSignals watches the two
// signals for its lifetime and must not outlive the state it was given.
#pragma once

#include <chrono>
#include <memory>
#include <vector>

#include "common/event_handles.h"
#include "mta/client/connection_pool.h"
#include "mta/config/config.h"
#include "mta/control/control_server.h"
#include "mta/server/listener.h"
#include "mta/server/server_context.h"
#include "mta/worker_pool.h"
#include "queue/queue_manager.h"
#include "queue/spool.h"

namespace stokend::wiring {

// How long running work may take after the first signal.
inline constexpr auto shutdown_grace = std::chrono::seconds(10);

struct ShutdownState {
  queue::QueueManager* queue = nullptr;
  std::vector<client::ConnectionPool*> pools;  // MX delivery, the fast lane
  queue::Spool* spool = nullptr;
  WorkerPool* workers = nullptr;
  event_base* base = nullptr;
  server::SessionRegistry* sessions = nullptr;
  std::vector<std::unique_ptr<server::Listener>>* listeners = nullptr;
  control::ControlServer* control = nullptr;
  // Set by the first signal.
  EventPtr grace_timer{};
  EventPtr drain_check{};
  bool stopping = false;

  // Stopped once no session is open, no delivery is running and no spool
  // write or worker job is outstanding: a delivery's result must be on disk
  // before we exit, or a restart would deliver it again.
  bool drained() const;
};

// Watches SIGTERM and SIGINT on the loop for its lifetime.
class ShutdownSignals {
 public:
  explicit ShutdownSignals(ShutdownState& state);
  ShutdownSignals(const ShutdownSignals&) = delete;
  ShutdownSignals& operator=(const ShutdownSignals&) = delete;

 private:
  EventPtr terminate_;
  EventPtr interrupt_;
};

// Runs the loop until a signal has stopped it, then closes what is left:
// listeners and the control socket, the queue, pooled connections, worker
// threads. Returns the process exit code.
int serve(const Config& config, ShutdownState& state);

}  // namespace stokend::wiring
