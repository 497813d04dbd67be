// The daemon's outbound side: DNS, and the two client paths with their own
// TLS contexts and connection pools: MX delivery (also smtp/lmtp routes and
// recipient probes) and the fast lane to recipients' Token Servers.
//
// Contract: a builder that fails logs why (critical) and returns null;
// run_daemon() then exits with status 1. The parts keep references to each
// other, so each set stays where it was built.
#pragma once

#include <memory>

#include "common/event_handles.h"
#include "dns/ares_resolver.h"
#include "mta/client/connection_pool.h"
#include "mta/client/mx_delivery.h"
#include "mta/client/remote_client.h"
#include "mta/config/config.h"
#include "mta/delivery/recipient_probe.h"

namespace stokend::wiring {

struct MxDeliveryPath {
  std::unique_ptr<dns::AresResolver> resolver;
  SslContextPtr tls;
  std::unique_ptr<client::ConnectionPool> pool;
  std::unique_ptr<client::MxDelivery> mx;
};

struct FastLanePath {
  SslContextPtr tls;
  std::unique_ptr<client::ConnectionPool> pool;
  std::unique_ptr<client::RemoteClient> client;
};

// DNS with the configured servers, pooled SMTP/LMTP connections with
// opportunistic STARTTLS (or the route's TLS policy), delivery to MX hosts.
std::unique_ptr<MxDeliveryPath> build_mx_delivery(const Config& config, event_base* base);

// Checks recipients of domains relayed to the MX behind stokend there
// (recipient_probe.domains), with the configured cache lifetimes.
std::unique_ptr<RecipientProbe> build_recipient_probe(const Config& config, event_base* base,
                                                      client::ConnectionPool& pool);

// Its own pool, because its sessions are authenticated per sender and kept
// warm longer, and its own trust anchors for Token Server certificates (the
// fast lane always verifies).
std::unique_ptr<FastLanePath> build_fast_lane(const Config& config, event_base* base,
                                              dns::Resolver& resolver);

}  // namespace stokend::wiring
