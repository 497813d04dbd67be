// Readiness notification for a service manager (systemd's sd_notify
// protocol, Type=notify units): one datagram per state change, sent to the
// unix socket named by $NOTIFY_SOCKET.
//
//   notify_ready()      READY=1, once every listener is bound and the spool
//                       recovered (systemctl start returns then)
//   notify_reloading()  RELOADING=1 with MONOTONIC_USEC= (CLOCK_MONOTONIC,
//                       as systemd asks since v253), before a SIGHUP reload;
//                       notify_ready() again once it is done
//   notify_stopping()   STOPPING=1, when shutdown begins
//
// Contract: without NOTIFY_SOCKET (a start by hand, a test) every function
// does nothing and the daemon behaves as before. A path starting with '@'
// names a socket in the abstract namespace. Sending never blocks the loop
// (MSG_DONTWAIT) and never fails the daemon: a manager that does not read
// its socket costs a debug line, nothing more. The variable is read at
// each call and left in the environment (no fork/exec of children needs it
// hidden). Loop thread only.
//
// Written here rather than linked from libsystemd: the protocol is one
// datagram, and libsystemd would add a runtime dependency (and its
// transitive ones) to every installation for about forty lines.
#pragma once

#include <string>
#include <string_view>

namespace stokend::wiring {

void notify_ready();
void notify_reloading();
void notify_stopping();

// Sends state (e.g. "READY=1") to $NOTIFY_SOCKET; the error text, or empty
// when sent or when there is no socket to send to.
std::string notify_service_manager(std::string_view state);

}  // namespace stokend::wiring
