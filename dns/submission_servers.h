// Where to submit mail for a domain's users directly: the submission servers
// published by SRV records (RFC 6186 section 3.1, RFC 8314 section 5.1), used
// by the fast lane to reach a recipient's token server.
//
// Contract: both _submissions._tcp.DOMAIN (implicit TLS, RFC 8314) and
// _submission._tcp.DOMAIN (STARTTLS, RFC 6186) are asked. The servers of the
// former come first, as RFC 8314 section 5.1 prefers implicit TLS; each set is
// in RFC 2782 order (priority, then weighted random). A set whose only target
// is "." means that service is not available (RFC 2782) and adds nothing.
// Outcomes: ok with at least one server; not_available when neither service
// is published; temporary_failure when there is no server and a lookup failed
// in a way worth retrying. The callback runs once, later, on the loop thread,
// under the resolver's lifetime rule. The TLS certificate must then be checked
// against the server's host name (RFC 6186 section 6).
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "dns/resolver.h"

namespace stokend::dns {

struct SubmissionServer {
  std::string host;  // the SRV target
  std::uint16_t port = 0;
  bool implicit_tls = false;  // true: TLS from the first byte; false: STARTTLS

  bool operator==(const SubmissionServer&) const = default;
};

struct SubmissionServers {
  enum Result { ok, not_available, temporary_failure };

  Result result = temporary_failure;
  std::vector<SubmissionServer> servers;  // only when ok
  std::string error;                      // only when not ok
};

void find_submission_servers(Resolver& resolver, const std::string& domain,
                             std::function<void(SubmissionServers)> callback);

}  // namespace stokend::dns
