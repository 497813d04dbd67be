// See operator_signals.h.
#include "daemon/operator_signals.h"

#include <spdlog/spdlog.h>

#include <csignal>
#include <stdexcept>

#include "daemon/inbound.h"
#include "daemon/log_file.h"
#include "daemon/service_notify.h"

namespace stokend::wiring {

OperatorSignals::OperatorSignals(event_base* base, const Config& config,
                                 server::ServerContext& context, SslContextPtr& tls)
    : config_(config),
      context_(context),
      tls_(tls),
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
      signals->reload();
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

void OperatorSignals::reload() {
  if (!tls_) {
    spdlog::info("SIGHUP: no listener uses TLS; other settings take effect at the next start");
    return;
  }
  SslContextPtr reloaded = reload_server_tls(config_);
  if (!reloaded) {
    spdlog::error("SIGHUP: TLS certificate not reloaded, the one in use stays");
    return;
  }
  tls_ = std::move(reloaded);
  context_.tls = tls_.get();
  spdlog::info(
      "SIGHUP: TLS certificate and key reloaded; other settings take effect at the next start");
}

}  // namespace stokend::wiring
