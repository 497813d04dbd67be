// See listener.h.
#include "mta/server/listener.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <spdlog/spdlog.h>
#include <sys/socket.h>

#include <algorithm>
#include <cstring>

#include "common/socket_address.h"
#include "common/unique_fd.h"
#include "mta/mta_metrics.h"
#include "mta/server/session.h"

namespace stokend::server {
namespace {

std::string address_text(const sockaddr* address) {
  char text[INET6_ADDRSTRLEN] = "";
  if (address->sa_family == AF_INET) {
    inet_ntop(AF_INET, &reinterpret_cast<const sockaddr_in*>(address)->sin_addr, text, sizeof text);
  } else if (address->sa_family == AF_INET6) {
    inet_ntop(AF_INET6, &reinterpret_cast<const sockaddr_in6*>(address)->sin6_addr, text,
              sizeof text);
  }
  return text;
}

// Refuses a connection over the limits with a 421 greeting (RFC 5321
// §3.1 allows 421 instead of 220). One short line on a fresh socket does not
// block; if it cannot be written whole, the close says enough.
void refuse(UniqueFd socket, const std::string& reply) {
  [[maybe_unused]] auto written = ::send(socket.get(), reply.data(), reply.size(), MSG_NOSIGNAL);
}

}  // namespace

Listener::Listener(ServerContext& context, const ListenerConfig& config)
    : context_(context), config_(config) {}

std::string Listener::open() {
  auto address = socket_address(config_.address, config_.port);
  if (!address) return "invalid listener address " + config_.address;
  listener_.reset(
      evconnlistener_new_bind(context_.base, &Listener::on_accept, this,
                              LEV_OPT_CLOSE_ON_FREE | LEV_OPT_REUSEABLE | LEV_OPT_CLOSE_ON_EXEC,
                              1024, address->get(), static_cast<int>(address->length)));
  if (!listener_) {
    return "cannot listen on " + config_.address + ":" + std::to_string(config_.port) + ": " +
           std::strerror(errno);
  }
  spdlog::info("listening on {}:{} role={} tls={}", config_.address, config_.port,
               config_.role == Role::mx ? "mx" : "submission",
               config_.tls == TlsMode::none       ? "none"
               : config_.tls == TlsMode::starttls ? "starttls"
                                                  : "implicit");
  return {};
}

void Listener::on_accept(evconnlistener*, evutil_socket_t socket, sockaddr* address, int,
                         void* self) {
  static_cast<Listener*>(self)->accept_connection(socket, address);
}

void Listener::accept_connection(evutil_socket_t raw_socket, const sockaddr* address) {
  UniqueFd socket(raw_socket);
  std::string peer = address_text(address);
  if (!config_.proxy_protocol) return admit(std::move(socket), std::move(peer));
  const bool trusted = std::any_of(config_.trusted_proxies.begin(), config_.trusted_proxies.end(),
                                   [&](const IpPrefix& prefix) { return prefix.contains(peer); });
  if (!trusted) {
    // Only a trusted balancer may say who the client is; anyone else could
    // claim any address and escape the per-address limits.
    spdlog::warn("closed connection from {}: not a trusted proxy (trusted_proxies of {}:{})", peer,
                 config_.address, config_.port);
    return;
  }
  start_proxy_handshake(std::move(socket), std::move(peer));
}

void Listener::start_proxy_handshake(UniqueFd socket, std::string balancer) {
  // Bounded like sessions: a balancer holds few connections open at once.
  if (handshakes_.size() >= context_.config().limits.max_connections) {
    spdlog::warn("closed connection from proxy {}: {} PROXY headers awaited", balancer,
                 handshakes_.size());
    return;
  }
  auto handshake = std::make_unique<ProxyHandshake>(
      context_.base, std::move(socket), std::move(balancer), defaults::proxy_header_timeout,
      [this](ProxyHandshake& done, UniqueFd client, std::optional<ProxyHeader> header) {
        proxy_header_read(done, std::move(client), std::move(header));
      });
  ProxyHandshake& started = *handshake;
  handshakes_.emplace(handshake.get(), std::move(handshake));
  started.start();
}

void Listener::proxy_header_read(ProxyHandshake& handshake, UniqueFd socket,
                                 std::optional<ProxyHeader> header) {
  const std::string balancer = handshake.balancer();
  handshakes_.erase(&handshake);  // its last act was this call
  if (!header) return;            // logged by the handshake; the socket closes here
  // LOCAL (a health check) or an unknown family: the balancer speaks for itself.
  std::string peer = header->addresses_known ? header->source_address : balancer;
  spdlog::debug("proxy {} forwards client {}:{}", balancer, peer, header->source_port);
  admit(std::move(socket), std::move(peer));
}

void Listener::admit(UniqueFd socket, std::string peer) {
  const auto& limits = context_.config().limits;
  const auto listener =
      mta_metrics::listener_role(config_.role == Role::mx, config_.tls == TlsMode::implicit);
  switch (context_.sessions.admit(peer, limits.max_connections, limits.max_connections_per_ip)) {
    case SessionRegistry::Admission::admitted:
      mta_metrics::count_connection(listener, mta_metrics::Admission::admitted);
      break;
    case SessionRegistry::Admission::too_many_total:
      mta_metrics::count_connection(listener, mta_metrics::Admission::refused_total_limit);
      spdlog::warn("refused connection from {}: {} connections open", peer,
                   context_.sessions.size());
      return refuse(std::move(socket), "421 4.3.2 " + context_.config().hostname +
                                           " Too many connections, try again later\r\n");
    case SessionRegistry::Admission::too_many_from_address:
      mta_metrics::count_connection(listener, mta_metrics::Admission::refused_address_limit);
      spdlog::warn("refused connection from {}: over {} connections from that address", peer,
                   limits.max_connections_per_ip);
      return refuse(std::move(socket), "421 4.7.0 " + context_.config().hostname +
                                           " Too many connections from your address\r\n");
  }
  // Replies are small and latency matters more than packet count.
  int enable = 1;
  setsockopt(socket.get(), IPPROTO_TCP, TCP_NODELAY, &enable, sizeof enable);
  auto session = std::make_shared<Session>(context_, config_, std::move(socket), peer);
  context_.sessions.add(session);
  session->start();
}

}  // namespace stokend::server
