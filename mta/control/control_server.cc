// See control_server.h.
#include "mta/control/control_server.h"

#include <spdlog/spdlog.h>
#include <sys/socket.h>
#include <unistd.h>

#include <utility>

namespace stokend::control {
namespace {

// A refusal is one short answer on a fresh socket: it fits the socket
// buffer, so a non-blocking send either takes it whole or the close says
// enough.
void refuse(UniqueFd socket, const std::string& reason) {
  const std::string wire = encode_answer(Answer{false, reason, {}});
  [[maybe_unused]] auto sent =
      ::send(socket.get(), wire.data(), wire.size(), MSG_NOSIGNAL | MSG_DONTWAIT);
}

}  // namespace

ControlServer::ControlServer(event_base* base, const std::filesystem::path& socket_path,
                             queue::QueueManager& queue, ControlLimits limits)
    : base_(base), socket_path_(socket_path), queue_(queue), limits_(limits) {}

ControlServer::~ControlServer() { close(); }

std::string ControlServer::open() {
  reap_.reset(event_new(base_, -1, 0, &ControlServer::on_reap, this));
  if (!reap_) return "control socket " + socket_path_.string() + ": cannot create an event";
  std::string error;
  UniqueFd socket = socket_file_.listen(socket_path_, error);
  if (!socket) return error;
  // Backlog 0: the socket is already listening.
  listener_.reset(evconnlistener_new(base_, &ControlServer::on_accept, this,
                                     LEV_OPT_CLOSE_ON_FREE | LEV_OPT_CLOSE_ON_EXEC, 0,
                                     socket.get()));
  if (!listener_) {
    socket_file_.remove();
    return "control socket " + socket_path_.string() + ": cannot accept connections";
  }
  socket.release();
  spdlog::info("control socket {}", socket_path_.string());
  return {};
}

void ControlServer::close() {
  listener_.reset();
  socket_file_.remove();
}

void ControlServer::on_accept(evconnlistener*, evutil_socket_t socket, sockaddr*, int, void* self) {
  static_cast<ControlServer*>(self)->accept_connection(UniqueFd(socket));
}

void ControlServer::accept_connection(UniqueFd socket) {
  const std::optional<uid_t> peer = peer_user_id(socket.get());
  if (!peer || (*peer != ::geteuid() && *peer != 0)) {
    spdlog::warn("control: refused a connection from user id {}",
                 peer ? std::to_string(*peer) : "unknown");
    return refuse(std::move(socket), "permission denied");
  }
  if (connections_.size() >= limits_.max_connections) {
    spdlog::warn("control: refused a connection: {} control connections open", connections_.size());
    return refuse(std::move(socket), "busy: too many control connections, try again");
  }
  auto connection = std::make_shared<ControlConnection>(
      base_, queue_, limits_, reload_,
      [this](ControlConnection* finished) { connection_finished(finished); });
  if (const std::string error = connection->start(std::move(socket)); !error.empty()) {
    spdlog::error("control: {}", error);
    return;
  }
  ControlConnection* key = connection.get();
  connections_.emplace(key, std::move(connection));
}

void ControlServer::connection_finished(ControlConnection* connection) {
  auto found = connections_.find(connection);
  if (found == connections_.end()) return;
  finished_.push_back(std::move(found->second));
  connections_.erase(found);
  event_active(reap_.get(), 0, 0);
}

void ControlServer::on_reap(evutil_socket_t, short, void* self) {
  static_cast<ControlServer*>(self)->finished_.clear();
}

}  // namespace stokend::control
