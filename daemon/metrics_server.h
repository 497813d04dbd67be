// The metrics endpoint: GET /metrics (the Prometheus text exposition
// format, version 0.0.4: common/metrics.h, plus the queue's length, bytes
// and oldest message age computed at the scrape) and GET /healthz (200
// while the daemon takes mail; 503 while the spool's file system is under
// its reserve, queue.min_free_space, or while the daemon is stopping).
//
// Why not evhttp or prometheus-cpp: libevent 2.1's evhttp (Debian 12) can
// neither cap its connections nor tell us when one closes before its first
// request (evhttp_set_max_connections and evhttp_set_newreqcb came in 2.2),
// so a client holding connections open could not be bounded; prometheus-cpp
// serves from civetweb's own threads, which would read the queue manager
// off the loop thread, and serves /metrics only. This is a small HTTP/1.1
// responder on the daemon's loop: one request per connection, then close
// (once the client has closed its side, or at the deadline).
//
// Limits (metrics section, mta/defaults.h): at most max_connections at once
// (more get 503 and are closed at once); the whole exchange within timeout;
// a request head of at most max_request_size octets (431 otherwise); no
// body is read. Bound to the configured address only.
//
// Answers: GET /metrics and GET /healthz; another method on those paths 405
// with "Allow: GET"; any other path 404; a malformed request 400.
//
// Contract: everything runs on the loop thread. open() binds and returns
// the reason on failure (empty on success); the sources must outlive the
// server. Destroying it closes the listener and every connection.
#pragma once

#include <event2/listener.h>

#include <cstddef>
#include <map>
#include <memory>
#include <string>

#include "common/event_handles.h"
#include "common/unique_fd.h"
#include "mta/config/config.h"
#include "queue/free_space.h"
#include "queue/queue_manager.h"

namespace stokend::wiring {

// What the endpoint reports on besides the registry.
struct MetricsSources {
  const queue::QueueManager* queue = nullptr;
  queue::FreeSpaceMonitor* spool_space = nullptr;  // null: not watched
  const bool* stopping = nullptr;                  // set on SIGTERM (shutdown.h)
};

// Registers every metric of the daemon's folders (queue, tokens, mta), so a
// scrape shows them from the start, at zero.
void register_metrics();

// The body of GET /metrics: the default registry, then the queue's gauges.
std::string render_metrics(const queue::QueueManager& queue);

class MetricsServer;

// Opens the endpoint when metrics.listen is set; false, logged (critical),
// when it cannot listen there.
bool start_metrics_server(MetricsServer& server, const Config& config);

class MetricsServer {
 public:
  MetricsServer(event_base* base, const MetricsConfig& config, MetricsSources sources);
  ~MetricsServer();
  MetricsServer(const MetricsServer&) = delete;
  MetricsServer& operator=(const MetricsServer&) = delete;

  std::string open();
  std::size_t connections() const { return connections_.size(); }

 private:
  struct Connection;
  static void on_accept(evconnlistener*, evutil_socket_t, sockaddr*, int, void* self);
  static void on_read(bufferevent*, void* connection);
  static void on_write(bufferevent*, void* connection);
  static void on_event(bufferevent*, short events, void* connection);
  void accept_connection(UniqueFd socket);
  void on_input(Connection& connection);
  void answer(Connection& connection, int status, const std::string& reason,
              const std::string& content_type, const std::string& body,
              const std::string& extra_headers = {});
  void close(Connection& connection);
  std::string health(int& status) const;

  event_base* base_;
  const MetricsConfig& config_;
  MetricsSources sources_;
  ListenerPtr listener_;
  std::map<Connection*, std::unique_ptr<Connection>> connections_;
};

}  // namespace stokend::wiring
