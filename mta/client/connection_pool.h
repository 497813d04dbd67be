// Persistent outbound connections, pooled per destination, so that messages
// to the same peer (the local Dovecot LMTP socket, a remote MX) reuse one
// session instead of paying connect, greeting, EHLO and TLS every time.
//
// Contract:
// - acquire() hands out an idle connection for the destination's key, or
//   opens a new one while fewer than max_connections_per_destination are
//   open (connecting, in use or idle), or queues the request until a
//   connection is released. The callback always runs later on the loop
//   thread: with a ready connection, or with the failure of the connection
//   attempt made for this request.
// - Every acquired connection goes back through release(): reusable when
//   its last transaction ended normally. A reusable connection goes to the
//   next waiting request or becomes idle; an idle one is closed (QUIT)
//   after idle_timeout, and a connection that has carried
//   max_transactions_per_connection transactions is closed on release.
// - The pool must outlive the work of its users. Destroying it closes its
//   idle connections and drops queued requests without calling them.
#pragma once

#include <cstddef>
#include <deque>
#include <functional>
#include <list>
#include <map>
#include <memory>
#include <optional>
#include <string>

#include "common/deferred_calls.h"
#include "common/destination.h"
#include "common/timer.h"
#include "mta/client/client_settings.h"
#include "mta/client/smtp_client.h"

namespace stokend::client {

class ConnectionPool {
 public:
  // Exactly one of connection and failure is set.
  using AcquireCallback =
      std::function<void(std::shared_ptr<SmtpClient> connection, std::optional<Failure> failure)>;

  ConnectionPool(event_base* base, ClientSettings settings);
  ~ConnectionPool();
  ConnectionPool(const ConnectionPool&) = delete;
  ConnectionPool& operator=(const ConnectionPool&) = delete;

  void acquire(const Destination& destination, AcquireCallback done);
  void release(std::shared_ptr<SmtpClient> connection, bool reusable);

  // Closes every idle connection now (daemon shutdown): each says QUIT and
  // goes away when answered.
  void close_idle();
  // Some connection closed by close_idle() still waits for its QUIT reply.
  bool quitting() const;
  // Drops the connections still quitting without waiting (after the event
  // loop has stopped, when no reply can arrive any more).
  void abort_quitting();

  const ClientSettings& settings() const { return settings_; }
  // For tests and monitoring, by Destination::key().
  std::size_t open_connections(const std::string& key) const;
  std::size_t idle_connections(const std::string& key) const;
  std::size_t waiting_requests(const std::string& key) const;

 private:
  struct IdleConnection {
    std::shared_ptr<SmtpClient> connection;
    std::unique_ptr<Timer> idle_timer;
  };
  struct DestinationState {
    Destination destination;
    std::size_t open = 0;            // connecting + in use + idle
    std::list<IdleConnection> idle;  // most recently released last
    std::deque<AcquireCallback> waiting;
  };

  void open_connection(const std::string& key, AcquireCallback done);
  void connection_gone(const std::string& key);  // one fewer open: serve a waiter
  void idle_expired(const std::string& key, SmtpClient* connection);
  void forget_if_unused(const std::string& key);

  event_base* base_;
  ClientSettings settings_;
  std::map<std::string, DestinationState> destinations_;
  DeferredCalls deferred_;
  // Callbacks from connections hold a weak reference: they do nothing once
  // the pool is gone.
  std::shared_ptr<ConnectionPool*> alive_;
  std::vector<std::weak_ptr<SmtpClient>> quitting_;  // closed by close_idle()
};

}  // namespace stokend::client
