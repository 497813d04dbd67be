// The signals an operator's tools send a running daemon, none of which stops
// it (SIGTERM and SIGINT do: shutdown.h):
//
//   SIGHUP   `systemctl reload`, `kill -HUP`: the configuration, the users
//            file and the TLS certificate and key are read again
//            (reload.h, the same reload as `stokenctl reload`). A
//            configuration that fails its check is refused with a log line
//            per error and the one in force stays.
//            Around the reload the service manager hears RELOADING=1, then
//            READY=1 (service_notify.h), whatever its outcome.
//   SIGUSR1  logrotate: the log file is reopened by name.
//   SIGUSR2  logged and ignored.
//   SIGPIPE  ignored from the start (startup.h).
//
// Contract: watches the three signals on the loop for its lifetime; the
// reloader outlives it.
#pragma once

#include "common/event_handles.h"
#include "daemon/reload.h"

namespace stokend::wiring {

class OperatorSignals {
 public:
  OperatorSignals(event_base* base, Reloader& reloader);
  OperatorSignals(const OperatorSignals&) = delete;
  OperatorSignals& operator=(const OperatorSignals&) = delete;

 private:
  static void on_signal(evutil_socket_t signal_number, short, void* self);

  Reloader& reloader_;
  EventPtr hangup_;
  EventPtr user1_;
  EventPtr user2_;
};

}  // namespace stokend::wiring
