// Per-domain routes, like Postfix's transport maps: how mail for a recipient
// domain leaves the queue.
//
//   maildir              the built-in Maildir store (default for local domains)
//   lmtp:unix:/path      LMTP (RFC 2033) over a unix socket, e.g. Dovecot
//   lmtp:[host]:port     LMTP over TCP
//   smtp:[host]:port     SMTP to a fixed next hop, no MX lookup (an existing
//                        MX behind stokend)
//   mx                   SMTP to the domain's MX hosts (default for remote domains)
//
// Hosts are IP literals, so a route never depends on DNS. The key "*" gives
// the route for remote domains that have none of their own.
#pragma once

#include <map>
#include <optional>
#include <string>
#include <string_view>

#include "common/destination.h"

namespace stokend {

struct Route {
  enum class Transport { maildir, lmtp, smtp, mx };
  Transport transport = Transport::mx;
  Destination next_hop;  // for lmtp and smtp

  std::string to_string() const;
};

// Parses one route; on failure returns nothing and says why in error.
std::optional<Route> parse_route(std::string_view text, std::string& error);

class RouteTable {
 public:
  RouteTable() = default;
  // routes: domain (lowercase) or "*" → route.
  explicit RouteTable(std::map<std::string, Route> routes) : routes_(std::move(routes)) {}
  // The route for a recipient domain; local says whether it is one of ours.
  Route route_for(std::string_view domain, bool local) const;

 private:
  std::map<std::string, Route> routes_;
};

}  // namespace stokend
