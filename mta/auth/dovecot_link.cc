// See dovecot_link.h.
#include "mta/auth/dovecot_link.h"

#include <event2/buffer.h>
#include <spdlog/spdlog.h>
#include <sys/socket.h>
#include <sys/un.h>

#include <cstring>

#include "common/socket_address.h"
#include "mta/defaults.h"

namespace stokend::auth {

DovecotLink::DovecotLink(event_base* base, DovecotEndpoint endpoint, Callbacks callbacks)
    : base_(base),
      endpoint_(std::move(endpoint)),
      callbacks_(std::move(callbacks)),
      retry_timer_(evtimer_new(base, on_retry, this)) {}

void DovecotLink::open() {
  if (state_ != State::closed) return;
  const auto now = std::chrono::steady_clock::now();
  if (now < next_attempt_) return schedule_retry();
  sockaddr_storage storage{};
  socklen_t length = 0;
  if (endpoint_.is_unix_socket()) {
    auto* address = reinterpret_cast<sockaddr_un*>(&storage);
    address->sun_family = AF_UNIX;
    std::memcpy(address->sun_path, endpoint_.unix_path.c_str(), endpoint_.unix_path.size() + 1);
    length = sizeof(sockaddr_un);
  } else {
    auto address = socket_address(endpoint_.host, endpoint_.port);
    if (!address) return close("not an IP address: " + endpoint_.host);
    storage = address->storage;
    length = address->length;
  }
  connection_.reset(bufferevent_socket_new(base_, -1, BEV_OPT_CLOSE_ON_FREE));
  if (!connection_) return close("cannot create a connection");
  bufferevent_setcb(connection_.get(), on_read, nullptr, on_event, this);
  state_ = State::connecting;
  if (bufferevent_socket_connect(connection_.get(), reinterpret_cast<sockaddr*>(&storage),
                                 static_cast<int>(length)) != 0) {
    // A unix socket that does not exist fails here, at once.
    return close(std::string("connect: ") + std::strerror(errno));
  }
  bufferevent_enable(connection_.get(), EV_READ);
}

void DovecotLink::ready() { backoff_ = std::chrono::milliseconds{0}; }

void DovecotLink::send(std::string_view line) {
  if (state_ != State::open) return;
  std::string framed(line);
  framed += '\n';
  bufferevent_write(connection_.get(), framed.data(), framed.size());
}

void DovecotLink::close(const std::string& reason) {
  connection_.reset();
  const bool was_open = state_ == State::open;
  state_ = State::closed;
  backoff_ = backoff_.count() == 0 ? defaults::dovecot_reconnect_min
                                   : std::min(backoff_ * 2, defaults::dovecot_reconnect_max);
  next_attempt_ = std::chrono::steady_clock::now() + backoff_;
  spdlog::warn("dovecot {}: {}{}; trying again in {} ms", endpoint_.describe(),
               was_open ? "connection lost: " : "", reason, backoff_.count());
  schedule_retry();
  if (callbacks_.on_close) callbacks_.on_close(reason);
}

void DovecotLink::schedule_retry() {
  if (evtimer_pending(retry_timer_.get(), nullptr)) return;
  const auto wait = std::chrono::duration_cast<std::chrono::milliseconds>(
      next_attempt_ - std::chrono::steady_clock::now());
  auto when = to_timeval(std::max(wait, std::chrono::milliseconds{0}));
  evtimer_add(retry_timer_.get(), &when);
}

void DovecotLink::on_retry(evutil_socket_t, short, void* self) {
  static_cast<DovecotLink*>(self)->open();
}

void DovecotLink::on_read(bufferevent* connection, void* self_pointer) {
  auto* self = static_cast<DovecotLink*>(self_pointer);
  // Dovecot greets at once: its lines may be read before libevent reports
  // the connect as done. They prove it is.
  if (self->state_ == State::connecting) self->connected();
  evbuffer* input = bufferevent_get_input(connection);
  while (self->state_ == State::open) {
    std::size_t length = 0;
    char* raw = evbuffer_readln(input, &length, EVBUFFER_EOL_LF);
    if (!raw) {
      if (evbuffer_get_length(input) > defaults::dovecot_max_line_length) {
        self->close("a line over " + std::to_string(defaults::dovecot_max_line_length) + " octets");
      }
      return;
    }
    std::string line(raw, length);
    std::free(raw);
    if (length > defaults::dovecot_max_line_length) {
      return self->close("a line over " + std::to_string(defaults::dovecot_max_line_length) +
                         " octets");
    }
    // The owner may close the link from on_line; state_ then ends the loop.
    self->callbacks_.on_line(line);
  }
}

void DovecotLink::connected() {
  state_ = State::open;
  if (callbacks_.on_open) callbacks_.on_open();
}

void DovecotLink::on_event(bufferevent*, short events, void* self_pointer) {
  auto* self = static_cast<DovecotLink*>(self_pointer);
  if (events & BEV_EVENT_CONNECTED) {
    if (self->state_ != State::connecting) return;  // on_read saw it first
    self->connected();
    // Lines that came with the connect: no further read event announces them.
    if (self->connection_ && evbuffer_get_length(bufferevent_get_input(self->connection_.get())))
      on_read(self->connection_.get(), self);
    return;
  }
  if (events & BEV_EVENT_EOF) return self->close("closed by Dovecot");
  if (events & BEV_EVENT_ERROR) {
    const int error = EVUTIL_SOCKET_ERROR();
    return self->close(std::string(self->state_ == State::connecting ? "connect: " : "") +
                       evutil_socket_error_to_string(error));
  }
}

}  // namespace stokend::auth
