// ScriptedDovecot: a stand-in for one of Dovecot's auth listeners in unit
// tests (mta/auth/ clients): a unix socket on the test's event loop that
// greets each connection with fixed lines and answers each line it reads
// with whatever the test's handler returns.
//
// Contract: runs on the test loop's thread only. received() holds every
// line read, in order, without its LF; connections() counts accepted
// connections; drop() closes the current one (as a stopped Dovecot would).
#pragma once

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/listener.h>
#include <sys/socket.h>
#include <sys/un.h>

#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <functional>
#include <string>
#include <vector>

#include "common/event_handles.h"

namespace stokend::testing {

class ScriptedDovecot {
 public:
  using Handler = std::function<std::string(const std::string& line)>;

  ScriptedDovecot(event_base* base, const std::filesystem::path& socket, std::string greeting,
                  Handler handler)
      : base_(base), greeting_(std::move(greeting)), handler_(std::move(handler)) {
    sockaddr_un address{};
    address.sun_family = AF_UNIX;
    std::strncpy(address.sun_path, socket.c_str(), sizeof(address.sun_path) - 1);
    listener_.reset(
        evconnlistener_new_bind(base, on_accept, this, LEV_OPT_CLOSE_ON_FREE | LEV_OPT_REUSEABLE, 8,
                                reinterpret_cast<sockaddr*>(&address), sizeof(address)));
  }
  ScriptedDovecot(const ScriptedDovecot&) = delete;
  ScriptedDovecot& operator=(const ScriptedDovecot&) = delete;

  bool listening() const { return listener_ != nullptr; }
  const std::vector<std::string>& received() const { return received_; }
  std::size_t connections() const { return connections_; }
  void drop() { connection_.reset(); }

 private:
  static void on_accept(evconnlistener*, evutil_socket_t fd, sockaddr*, int, void* self_pointer) {
    auto* self = static_cast<ScriptedDovecot*>(self_pointer);
    ++self->connections_;
    self->connection_.reset(bufferevent_socket_new(self->base_, fd, BEV_OPT_CLOSE_ON_FREE));
    bufferevent_setcb(self->connection_.get(), on_read, nullptr, nullptr, self);
    bufferevent_enable(self->connection_.get(), EV_READ | EV_WRITE);
    bufferevent_write(self->connection_.get(), self->greeting_.data(), self->greeting_.size());
  }

  static void on_read(bufferevent* connection, void* self_pointer) {
    auto* self = static_cast<ScriptedDovecot*>(self_pointer);
    evbuffer* input = bufferevent_get_input(connection);
    std::size_t length = 0;
    while (char* raw = evbuffer_readln(input, &length, EVBUFFER_EOL_LF)) {
      std::string line(raw, length);
      std::free(raw);
      self->received_.push_back(line);
      const std::string answer = self->handler_(line);
      if (!self->connection_) return;  // the handler dropped it
      if (!answer.empty()) bufferevent_write(connection, answer.data(), answer.size());
    }
  }

  event_base* base_;
  std::string greeting_;
  Handler handler_;
  ListenerPtr listener_;
  BuffereventPtr connection_;
  std::vector<std::string> received_;
  std::size_t connections_ = 0;
};

}  // namespace stokend::testing
