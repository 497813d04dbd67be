// See proxy_handshake.h.
#include "mta/server/proxy_handshake.h"

#include <spdlog/spdlog.h>
#include <sys/socket.h>

#include <array>
#include <cerrno>
#include <cstring>

namespace stokend::server {

ProxyHandshake::ProxyHandshake(event_base* base, UniqueFd socket, std::string balancer,
                               std::chrono::milliseconds timeout, Done done)
    : socket_(std::move(socket)),
      balancer_(std::move(balancer)),
      deadline_(std::chrono::steady_clock::now() + timeout),
      done_(std::move(done)),
      event_(event_new(base, socket_.get(), EV_READ, &ProxyHandshake::on_event, this)) {}

void ProxyHandshake::start() {
  if (!event_) return finish(std::nullopt, "cannot create an event");
  arm();
}

void ProxyHandshake::arm() {
  const auto left = std::chrono::duration_cast<std::chrono::microseconds>(
      deadline_ - std::chrono::steady_clock::now());
  const auto micros = std::max<std::int64_t>(left.count(), 0);
  timeval timeout{static_cast<time_t>(micros / 1000000),
                  static_cast<suseconds_t>(micros % 1000000)};
  event_add(event_.get(), &timeout);
}

void ProxyHandshake::on_event(evutil_socket_t, short what, void* self) {
  auto* handshake = static_cast<ProxyHandshake*>(self);
  if (what & EV_TIMEOUT) return handshake->finish(std::nullopt, "no PROXY header in time");
  handshake->read_some();
}

void ProxyHandshake::read_some() {
  std::array<char, max_proxy_header> buffer;
  const std::size_t room = max_proxy_header - received_.size();
  // Peek first: only the header's octets may be taken off the socket.
  const ssize_t peeked = ::recv(socket_.get(), buffer.data(), room, MSG_PEEK);
  if (peeked == 0) return finish(std::nullopt, "connection closed before the PROXY header");
  if (peeked < 0) {
    if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR) return arm();
    return finish(std::nullopt, std::string("cannot read: ") + std::strerror(errno));
  }
  std::string candidate = received_;
  candidate.append(buffer.data(), static_cast<std::size_t>(peeked));
  const ProxyParse parse = parse_proxy_header(candidate);
  if (parse.status == ProxyParse::Status::invalid) return finish(std::nullopt, parse.error);
  // Complete: take up to the header's end. Incomplete: every octet seen so
  // far belongs to the header (no CRLF yet, or short of the v2 length).
  const std::size_t take = parse.status == ProxyParse::Status::complete
                               ? parse.length - received_.size()
                               : static_cast<std::size_t>(peeked);
  if (::recv(socket_.get(), buffer.data(), take, 0) != static_cast<ssize_t>(take)) {
    return finish(std::nullopt, "cannot take the PROXY header off the socket");
  }
  received_.append(buffer.data(), take);
  if (parse.status == ProxyParse::Status::complete) return finish(parse.header);
  if (received_.size() >= max_proxy_header) return finish(std::nullopt, "PROXY header too long");
  arm();
}

void ProxyHandshake::finish(std::optional<ProxyHeader> header, const std::string& failure) {
  event_.reset();
  if (!header) {
    spdlog::warn("closed connection from proxy {}: {}", balancer_, failure);
  }
  // done may destroy this object: nothing here is touched after the call.
  Done done = std::move(done_);
  done(*this, std::move(socket_), std::move(header));
}

}  // namespace stokend::server
