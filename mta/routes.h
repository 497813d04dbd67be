// Per-domain routes, like Postfix's transport maps: how mail for a recipient
// domain leaves the queue.
//
//   maildir              the built-in Maildir store (default for local domains)
//   lmtp:unix:/path      LMTP (RFC 2033) over a unix socket, e.g. Dovecot
//   lmtp:[host]:port     LMTP over TCP
//   smtp:[host]:port     SMTP to a fixed next hop, no MX lookup (an existing
//                        MX behind stokend, or a smarthost such as
//                        smtp:[relay.example]:587)
//   mx                   SMTP to the domain's MX hosts (default for remote domains)
//
// LMTP hosts are IP literals, so a mailstore never depends on DNS. An SMTP
// next hop may also be a host name: as in Postfix's transport maps, the
// brackets mean "this host, no MX lookup", and its addresses come from its
// A/AAAA records at each delivery. The key "*" gives the route for remote
// domains that have none of their own.
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
  Destination next_hop;  // for lmtp and smtp; host empty when next_hop_name is set
  // For smtp: the next hop's host name when the route names one
  // (smtp:[relay.example]:587); empty for an IP literal.
  std::string next_hop_name;

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
