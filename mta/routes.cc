// See routes.h.
#include "mta/routes.h"

#include <arpa/inet.h>

#include <charconv>

#include "common/ascii.h"
#include "message/address.h"

namespace stokend {
namespace {

bool is_ip_literal(const std::string& host) {
  unsigned char buffer[16];
  return inet_pton(AF_INET, host.c_str(), buffer) == 1 ||
         inet_pton(AF_INET6, host.c_str(), buffer) == 1;
}

// "[host]:port" with an IPv4 or IPv6 literal, or (names_allowed) a host name,
// returned in name with the destination's host left empty.
std::optional<Destination> parse_bracketed_next_hop(Protocol protocol, std::string_view text,
                                                    bool names_allowed, std::string& name,
                                                    std::string& error) {
  auto close = text.find(']');
  if (text.empty() || text.front() != '[' || close == std::string_view::npos ||
      close + 1 >= text.size() || text[close + 1] != ':') {
    error = std::string("expected [") + (names_allowed ? "host" : "IP-address") + "]:port, got '" +
            std::string(text) + "'";
    return std::nullopt;
  }
  std::string host(text.substr(1, close - 1));
  if (!is_ip_literal(host)) {
    if (!names_allowed) {
      error = "'" + host + "' is not an IP address (lmtp routes use IP literals, no DNS)";
      return std::nullopt;
    }
    if (!is_domain_name(host)) {
      error = "'" + host + "' is neither an IP address nor a host name";
      return std::nullopt;
    }
    name = ascii_lowercase(host);
    host.clear();
  }
  std::string_view port_text = text.substr(close + 2);
  unsigned port = 0;
  auto [end, failure] =
      std::from_chars(port_text.data(), port_text.data() + port_text.size(), port);
  if (failure != std::errc{} || end != port_text.data() + port_text.size() || port == 0 ||
      port > 65535) {
    error = "port must be 1-65535, got '" + std::string(port_text) + "'";
    return std::nullopt;
  }
  return Destination::tcp(protocol, std::move(host), static_cast<std::uint16_t>(port));
}

}  // namespace

std::string Route::to_string() const {
  switch (transport) {
    case Transport::maildir:
      return "maildir";
    case Transport::mx:
      return "mx";
    case Transport::lmtp:
    case Transport::smtp:
      break;
  }
  if (!next_hop_name.empty()) {
    Destination named = next_hop;
    named.host = next_hop_name;
    return named.key();
  }
  return next_hop.key();
}

std::optional<Route> parse_route(std::string_view text, std::string& error) {
  Route route;
  if (text == "maildir") {
    route.transport = Route::Transport::maildir;
    return route;
  }
  if (text == "mx") {
    route.transport = Route::Transport::mx;
    return route;
  }
  if (text.starts_with("lmtp:unix:")) {
    auto path = text.substr(10);
    if (path.empty() || path.front() != '/') {
      error = "lmtp:unix: needs an absolute socket path";
      return std::nullopt;
    }
    route.transport = Route::Transport::lmtp;
    route.next_hop = Destination::unix_socket(Protocol::lmtp, std::string(path));
    route.next_hop.tls_policy = TlsPolicy::never;
    return route;
  }
  bool lmtp = text.starts_with("lmtp:");
  if (lmtp || text.starts_with("smtp:")) {
    auto next_hop = parse_bracketed_next_hop(lmtp ? Protocol::lmtp : Protocol::smtp, text.substr(5),
                                             !lmtp, route.next_hop_name, error);
    if (!next_hop) return std::nullopt;
    route.transport = lmtp ? Route::Transport::lmtp : Route::Transport::smtp;
    route.next_hop = std::move(*next_hop);
    // A mailstore on a private link is not worth a handshake; an SMTP next
    // hop gets STARTTLS when it offers it.
    route.next_hop.tls_policy = lmtp ? TlsPolicy::never : TlsPolicy::opportunistic;
    return route;
  }
  error = "unknown route '" + std::string(text) +
          "' (expected maildir, mx, lmtp:unix:/path, lmtp:[ip]:port or smtp:[host]:port)";
  return std::nullopt;
}

Route RouteTable::route_for(std::string_view domain, bool local) const {
  if (auto found = routes_.find(ascii_lowercase(domain)); found != routes_.end()) {
    return found->second;
  }
  Route route;
  if (local) {
    route.transport = Route::Transport::maildir;
  } else if (auto fallback = routes_.find("*"); fallback != routes_.end()) {
    return fallback->second;
  }
  return route;
}

}  // namespace stokend
