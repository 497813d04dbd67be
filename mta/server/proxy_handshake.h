// Reads the PROXY protocol header (proxy_protocol.h) from a connection a
// listener accepted from a trusted load balancer, on the event loop and
// under a deadline, before any session exists for it.
//
// Contract: start() returns at once; done runs exactly once, later, on the
// loop thread, with the socket and the header, or with no header when the
// connection sent something else, closed, failed or missed the deadline
// (logged here with the balancer's address and the reason; the caller just
// drops the socket). Only the header's own octets are read (peeking first),
// so whatever the client sends next is left for the session. Destroying the
// handshake first abandons it silently and closes the socket. done may
// destroy the handshake.
#pragma once

#include <chrono>
#include <functional>
#include <optional>
#include <string>

#include "common/event_handles.h"
#include "common/unique_fd.h"
#include "mta/server/proxy_protocol.h"

namespace stokend::server {

class ProxyHandshake {
 public:
  // handshake: the one reporting, so that its owner can let it go.
  using Done = std::function<void(ProxyHandshake& handshake, UniqueFd socket,
                                  std::optional<ProxyHeader> header)>;

  // balancer: the connection's own peer address, for log lines.
  ProxyHandshake(event_base* base, UniqueFd socket, std::string balancer,
                 std::chrono::milliseconds timeout, Done done);
  ProxyHandshake(const ProxyHandshake&) = delete;
  ProxyHandshake& operator=(const ProxyHandshake&) = delete;

  void start();
  const std::string& balancer() const { return balancer_; }

 private:
  static void on_event(evutil_socket_t, short what, void* self);
  void read_some();
  void arm();
  void finish(std::optional<ProxyHeader> header, const std::string& failure = {});

  UniqueFd socket_;
  std::string balancer_;
  std::chrono::steady_clock::time_point deadline_;
  Done done_;
  EventPtr event_;
  std::string received_;  // header octets consumed so far
};

}  // namespace stokend::server
