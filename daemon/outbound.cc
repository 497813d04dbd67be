// See outbound.h.
#include "daemon/outbound.h"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <string>

#include "mta/client/client_tls.h"

namespace stokend::wiring {
namespace {

// The fast lane's client: every wait at most fast_lane.timeout (a Token
// Server answers in milliseconds; a slow one must not hold chat mail back
// from its ordinary path), sessions kept for fast_lane.idle_timeout.
client::ClientSettings fast_lane_settings(const Config& config, SSL_CTX* tls_context) {
  client::ClientSettings settings;
  settings.helo_name = config.hostname;
  settings.tls_context = tls_context;
  settings.idle_timeout = config.fast_lane.idle_timeout;
  auto cap = [limit = config.fast_lane.timeout](std::chrono::milliseconds& timeout) {
    timeout = std::min(timeout, limit);
  };
  client::ClientTimeouts& timeouts = settings.timeouts;
  for (auto* timeout :
       {&timeouts.connect, &timeouts.greeting, &timeouts.command, &timeouts.data_initiation,
        &timeouts.data_block, &timeouts.data_done, &timeouts.tls_handshake, &timeouts.quit}) {
    cap(*timeout);
  }
  return settings;
}

}  // namespace

std::unique_ptr<MxDeliveryPath> build_mx_delivery(const Config& config, event_base* base) {
  auto path = std::make_unique<MxDeliveryPath>();
  dns::ResolverOptions resolver_options;
  resolver_options.servers = config.dns.servers;
  resolver_options.timeout = config.dns.timeout;
  path->resolver = std::make_unique<dns::AresResolver>(base, resolver_options);
  // One context serves every policy: verification is switched on per
  // connection (client_tls.h), so opportunistic and "require" deliveries
  // never look at the trust anchors. They matter for "verify" only: the
  // configured CA file alone when there is one (an operator pinning a
  // private CA does not want every public CA trusted as well), else the
  // system store.
  client::ClientTlsOptions tls_options;
  tls_options.ca_file = config.delivery.tls_policy_ca_file.string();
  tls_options.use_system_store = tls_options.ca_file.empty();
  std::string error;
  path->tls = client::make_client_tls_context(tls_options, error);
  if (!path->tls) {
    spdlog::critical("cannot create the client TLS context: {}", error);
    return nullptr;
  }
  client::ClientSettings settings;
  settings.helo_name = config.hostname;
  settings.tls_context = path->tls.get();
  path->pool = std::make_unique<client::ConnectionPool>(base, settings);
  path->mx =
      std::make_unique<client::MxDelivery>(*path->pool, *path->resolver, config.delivery.mx_port);
  return path;
}

std::unique_ptr<FastLanePath> build_fast_lane(const Config& config, event_base* base,
                                              dns::Resolver& resolver) {
  auto path = std::make_unique<FastLanePath>();
  client::ClientTlsOptions tls_options;
  tls_options.ca_file = config.fast_lane.ca_file.string();
  tls_options.use_system_store = tls_options.ca_file.empty();
  std::string error;
  path->tls = client::make_client_tls_context(tls_options, error);
  if (!path->tls) {
    spdlog::critical("cannot create the fast lane's TLS context: {}", error);
    return nullptr;
  }
  path->pool =
      std::make_unique<client::ConnectionPool>(base, fast_lane_settings(config, path->tls.get()));
  path->client = std::make_unique<client::RemoteClient>(
      *path->pool, resolver,
      client::FastLaneSettings{.mx_fallback = config.fast_lane.mx_fallback,
                               .mx_fallback_port = config.fast_lane.mx_fallback_port,
                               .dialects = config.fast_lane.dialects});
  return path;
}

std::unique_ptr<RecipientProbe> build_recipient_probe(const Config& config, event_base* base,
                                                      client::ConnectionPool& pool) {
  return std::make_unique<RecipientProbe>(
      base, pool,
      RecipientProbeSettings{.positive_ttl = config.recipient_probe.positive_ttl,
                             .negative_ttl = config.recipient_probe.negative_ttl,
                             .max_entries = defaults::recipient_probe_cache_entries});
}

}  // namespace stokend::wiring
