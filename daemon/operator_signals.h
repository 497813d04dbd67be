// The signals an operator's tools send a running daemon, none of which stops
// it (SIGTERM and SIGINT do: shutdown.h):
//
//   SIGHUP   `systemctl reload`, `kill -HUP`: the TLS certificate and key
//            are read again (a renewed certificate is in use without a
//            restart). Sessions already in TLS keep theirs; every TLS
//            handshake from then on uses the new one. A certificate that
//            fails to load is refused with a log line naming the error, and
//            the one in use stays. The users file needs no signal (it is
//            re-read when it changes); other settings take effect at the
//            next start, which the log line says. Around the reload the
//            service manager hears RELOADING=1, then READY=1
//            (service_notify.h), whatever its outcome.
//   SIGUSR1  logrotate: the log file is reopened by name.
//   SIGUSR2  logged and ignored.
//   SIGPIPE  ignored from the start (startup.h).
//
// Contract: watches the three signals on the loop for its lifetime; tls and
// context outlive it. On a successful reload, tls owns the new context and
// context.tls points to it; the old context is freed once the last session
// using it has ended (OpenSSL counts the references).
#pragma once

#include "common/event_handles.h"
#include "mta/config/config.h"
#include "mta/server/server_context.h"

namespace stokend::wiring {

class OperatorSignals {
 public:
  OperatorSignals(event_base* base, const Config& config, server::ServerContext& context,
                  SslContextPtr& tls);
  OperatorSignals(const OperatorSignals&) = delete;
  OperatorSignals& operator=(const OperatorSignals&) = delete;

 private:
  static void on_signal(evutil_socket_t signal_number, short, void* self);
  void reload();

  const Config& config_;
  server::ServerContext& context_;
  SslContextPtr& tls_;
  EventPtr hangup_;
  EventPtr user1_;
  EventPtr user2_;
};

}  // namespace stokend::wiring
