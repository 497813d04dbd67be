// A listening socket for one configured role (MX or submission, plain,
// STARTTLS or implicit TLS). Accepts connections, applies the connection
// limits (421 before any session state exists) and starts a Session.
//
// Behind a load balancer (proxy_protocol), a connection must come from one
// of trusted_proxies and open with a PROXY header (proxy_handshake.h); the
// client it names is then the session's peer for the limits, the Received
// field and the logs. Anything else is closed with a log line and no reply,
// before any SMTP byte.
//
// The context is the daemon's own, whose generation a configuration reload
// replaces: the limits checked at accept are the current ones, and each
// Session takes a copy of the context (its generation) when it starts.
#pragma once

#include <memory>
#include <optional>
#include <string>
#include <unordered_map>

#include "common/event_handles.h"
#include "mta/config/config.h"
#include "mta/server/proxy_handshake.h"
#include "mta/server/server_context.h"

namespace stokend::server {

class Listener {
 public:
  Listener(ServerContext& context, const ListenerConfig& config);
  // Binds and listens; returns an error text on failure.
  std::string open();
  void close() {
    listener_.reset();
    handshakes_.clear();
  }

 private:
  static void on_accept(evconnlistener*, evutil_socket_t, sockaddr*, int, void* self);
  void accept_connection(evutil_socket_t socket, const sockaddr* address);
  void start_proxy_handshake(UniqueFd socket, std::string balancer);
  void proxy_header_read(ProxyHandshake& handshake, UniqueFd socket,
                         std::optional<ProxyHeader> header);
  // Applies the connection limits to peer and starts its session.
  void admit(UniqueFd socket, std::string peer);

  ServerContext& context_;
  const ListenerConfig& config_;
  ListenerPtr listener_;
  // Connections whose PROXY header is being read; destroyed with the listener.
  std::unordered_map<ProxyHandshake*, std::unique_ptr<ProxyHandshake>> handshakes_;
};

}  // namespace stokend::server
