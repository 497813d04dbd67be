// See shutdown.h.
#include "daemon/shutdown.h"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <csignal>

#include "daemon/service_notify.h"

namespace stokend::wiring {
namespace {

void on_drain_check(evutil_socket_t, short, void* argument) {
  auto* state = static_cast<ShutdownState*>(argument);
  // Connections released by deliveries that just finished say QUIT too.
  for (client::ConnectionPool* pool : state->pools) pool->close_idle();
  if (state->drained()) event_base_loopexit(state->base, nullptr);
}

void on_signal(evutil_socket_t signal_number, short, void* argument) {
  auto* state = static_cast<ShutdownState*>(argument);
  if (state->stopping) {
    spdlog::warn("second signal: stopping now");
    event_base_loopbreak(state->base);
    return;
  }
  state->stopping = true;
  spdlog::info("signal {}: shutting down", signal_number);
  notify_stopping();
  state->queue->stop();
  for (auto& listener : *state->listeners) listener->close();
  state->sessions->request_shutdown_all();
  state->drain_check.reset(event_new(state->base, -1, EV_PERSIST, &on_drain_check, state));
  timeval every{0, 20 * 1000};
  event_add(state->drain_check.get(), &every);
  state->grace_timer.reset(evtimer_new(
      state->base,
      [](evutil_socket_t, short, void* base) {
        spdlog::warn("work still running after {}s: stopping", shutdown_grace.count());
        event_base_loopbreak(static_cast<event_base*>(base));
      },
      state->base));
  timeval grace{shutdown_grace.count(), 0};
  evtimer_add(state->grace_timer.get(), &grace);
}

}  // namespace

bool ShutdownState::drained() const {
  return sessions->size() == 0 && queue->statistics().in_flight == 0 &&
         spool->requests_in_flight() == 0 && workers->pending() == 0 &&
         std::none_of(pools.begin(), pools.end(),
                      [](const client::ConnectionPool* pool) { return pool->quitting(); });
}

ShutdownSignals::ShutdownSignals(ShutdownState& state)
    : terminate_(evsignal_new(state.base, SIGTERM, &on_signal, &state)),
      interrupt_(evsignal_new(state.base, SIGINT, &on_signal, &state)) {
  evsignal_add(terminate_.get(), nullptr);
  evsignal_add(interrupt_.get(), nullptr);
}

int serve(const Config& config, ShutdownState& state) {
  // Watched until we return, so a signal during the closing below is no
  // more than a note to a loop that has stopped.
  const ShutdownSignals signals(state);
  spdlog::info("stokend ready: hostname={} domains={}", config.hostname,
               fmt::join(config.local_domains, ","));
  notify_ready();  // every listener is bound and the spool recovered
  event_base_dispatch(state.base);
  state.listeners->clear();
  state.control->close();
  state.queue->stop();
  for (client::ConnectionPool* pool : state.pools) {
    pool->close_idle();
    pool->abort_quitting();
  }
  state.workers->stop();
  spdlog::info("stokend stopped");
  return 0;
}

}  // namespace stokend::wiring
