// A listening socket for one configured role (MX or submission, plain,
// STARTTLS or implicit TLS). Accepts connections, applies the connection
// limits (421 before any session state exists) and starts a Session.
//
// The context is the daemon's own, whose generation a configuration reload
// replaces: the limits checked at accept are the current ones, and each
// Session takes a copy of the context (its generation) when it starts.
#pragma once

#include <string>

#include "common/event_handles.h"
#include "mta/config/config.h"
#include "mta/server/server_context.h"

namespace stokend::server {

class Listener {
 public:
  Listener(ServerContext& context, const ListenerConfig& config);
  // Binds and listens; returns an error text on failure.
  std::string open();
  void close() { listener_.reset(); }

 private:
  static void on_accept(evconnlistener*, evutil_socket_t, sockaddr*, int, void* self);
  void accept_connection(evutil_socket_t socket, const sockaddr* address);

  ServerContext& context_;
  const ListenerConfig& config_;
  ListenerPtr listener_;
};

}  // namespace stokend::server
