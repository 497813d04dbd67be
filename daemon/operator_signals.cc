// See operator_signals.h.
#include "daemon/operator_signals.h"

#include <spdlog/spdlog.h>

#include <csignal>
#include <stdexcept>

#include "daemon/log_file.h"
#include "daemon/service_notify.h"

namespace stokend::wiring {

OperatorSignals::OperatorSignals(event_base* base, Reloader& reloader)
    : reloader_(reloader),
      hangup_(evsignal_new(base, SIGHUP, &OperatorSignals::on_signal, this)),
      user1_(evsignal_new(base, SIGUSR1, &OperatorSignals::on_signal, this)),
      user2_(evsignal_new(base, SIGUSR2, &OperatorSignals::on_signal, this)) {
  if (!hangup_ || !user1_ || !user2_) throw std::runtime_error("cannot watch signals");
  evsignal_add(hangup_.get(), nullptr);
  evsignal_add(user1_.get(), nullptr);
  evsignal_add(user2_.get(), nullptr);
}

void OperatorSignals::on_signal(evutil_socket_t signal_number, short, void* self) {
  auto* signals = static_cast<OperatorSignals*>(self);
  switch (signal_number) {
    case SIGHUP:
      // systemctl reload waits for READY=1 after RELOADING=1, whatever
      // the reload's outcome (a refused one is in the log).
      notify_reloading();
      signals->reloader_.reload_configuration("SIGHUP");
      notify_ready();
      break;
    case SIGUSR1:
      if (auto error = reopen_log_file()) {
        spdlog::error("SIGUSR1: cannot reopen the log file, still writing to the old one: {}",
                      *error);
      } else {
        spdlog::info("SIGUSR1: log file reopened");
      }
      break;
    default:
      spdlog::info("signal {} ignored", static_cast<int>(signal_number));
      break;
  }
}

}  // namespace stokend::wiring
