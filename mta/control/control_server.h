// The daemon's side of `stokenctl queue ...` and `stokenctl reload`: listens on the control socket
// (control_socket.h) on the event loop and serves each connection
// (control_connection.h) against the queue. Protocol: control_protocol.h.
//
// Who may connect: the socket file is mode 0600, and a connection whose
// peer is neither our effective user nor root is refused all the same. At
// most limits.max_connections connections are served at once; more are
// answered "ERR busy" and closed.
//
// Contract: loop thread only. open() once; the socket file is removed by
// close() or the destructor. Connections still open at destruction are
// dropped without an answer. The queue and the event base must outlive
// this object.
#pragma once

#include <filesystem>
#include <memory>
#include <string>
#include <unordered_map>
#include <vector>

#include "common/event_handles.h"
#include "common/unique_fd.h"
#include "mta/control/control_connection.h"
#include "mta/control/control_socket.h"
#include "queue/queue_manager.h"

namespace stokend::control {

class ControlServer {
 public:
  ControlServer(event_base* base, const std::filesystem::path& socket_path,
                queue::QueueManager& queue, ControlLimits limits = {});
  ~ControlServer();
  ControlServer(const ControlServer&) = delete;
  ControlServer& operator=(const ControlServer&) = delete;

  // Creates the socket and starts accepting; returns an error text on
  // failure.
  std::string open();
  // Stops accepting and removes the socket file; open connections finish.
  void close();

  // What RELOAD runs (the daemon's configuration reload); set before open().
  void on_reload(ControlConnection::Reload reload) { reload_ = std::move(reload); }

  std::size_t open_connections() const { return connections_.size(); }

 private:
  static void on_accept(evconnlistener*, evutil_socket_t socket, sockaddr*, int, void* self);
  static void on_reap(evutil_socket_t, short, void* self);
  void accept_connection(UniqueFd socket);
  void connection_finished(ControlConnection* connection);

  event_base* base_;
  std::filesystem::path socket_path_;
  queue::QueueManager& queue_;
  ControlLimits limits_;
  ControlConnection::Reload reload_;
  ControlSocketFile socket_file_;
  ListenerPtr listener_;  // after socket_file_: stops accepting before the file goes
  std::unordered_map<ControlConnection*, std::shared_ptr<ControlConnection>> connections_;
  // Finished connections wait here for a fresh turn of the loop: they are
  // destroyed outside their own callbacks.
  std::vector<std::shared_ptr<ControlConnection>> finished_;
  EventPtr reap_;
};

}  // namespace stokend::control
