// Readers of where mail goes: dns, delivery, routes, tls_policies and
// recipient_probe (whose domains are checked against local_domains and
// routes once the whole file is read). See config_reader.h.
#include <algorithm>

#include "mta/config/config_reader.h"
#include "mta/routes.h"
#include "mta/tls_policies.h"

namespace stokend::config_reading {

namespace {

// One entry of dns.servers as c-ares takes it (ares_set_servers_ports_csv):
// an IPv4 address with an optional ":port", an IPv6 address bare or in
// brackets, "[v6]:port". Nothing else: c-ares would refuse the list at start.
bool is_dns_server(std::string_view entry) {
  std::string_view host = entry;
  std::optional<std::string_view> port;
  if (entry.starts_with('[')) {
    const std::size_t close = entry.find(']');
    if (close == std::string_view::npos) return false;
    host = entry.substr(1, close - 1);
    const std::string_view rest = entry.substr(close + 1);
    if (!rest.empty()) {
      if (rest.front() != ':') return false;
      port = rest.substr(1);
    }
    if (host.find(':') == std::string_view::npos) return false;  // brackets are for IPv6
  } else if (std::count(entry.begin(), entry.end(), ':') == 1) {
    const std::size_t colon = entry.find(':');
    host = entry.substr(0, colon);
    port = entry.substr(colon + 1);
    if (host.find('.') == std::string_view::npos) return false;  // "a:53" is no IPv4
  }
  if (!canonical_ip_address(std::string(host))) return false;
  if (port) {
    const auto number = parse_decimal(*port);
    if (!number || *number < 1 || *number > 65535) return false;
  }
  return true;
}

}  // namespace

void ConfigReader::read_dns(const Field& field, DnsConfig& dns) {
  read_map(field.value, field.setting, field.value_mark(),
           {{"servers",
             [&](const Field& key_field) {
               const auto servers = read_string(key_field);
               if (!servers) return;
               std::string_view rest = *servers;
               while (!servers->empty()) {
                 const std::size_t comma = rest.find(',');
                 const std::string_view entry = rest.substr(0, comma);
                 if (!is_dns_server(entry)) {
                   error_at(key_field.value_mark(),
                            key_field.setting + ": '" + std::string(entry) +
                                "' is not a DNS server address (expected IP addresses with an "
                                "optional port, separated by commas: 127.0.0.1:53, [::1]:53)");
                   return;
                 }
                 if (comma == std::string_view::npos) break;
                 rest.remove_prefix(comma + 1);
               }
               dns.servers = *servers;
             }},
            {"timeout", [&](const Field& key_field) {
               if (const auto value = read_duration(key_field, false)) dns.timeout = *value;
             }}});
}

void ConfigReader::read_delivery(const Field& field, DeliveryConfig& delivery) {
  read_map(field.value, field.setting, field.value_mark(),
           {{"mx_port",
             [&](const Field& key_field) {
               if (const auto port = read_port(key_field)) delivery.mx_port = *port;
             }},
            {"tls_policy_ca_file",
             [&](const Field& key_field) {
               if (const auto path = read_ca_file(key_field)) {
                 delivery.tls_policy_ca_file = *path;
               }
             }},
            {"relay_credentials", [&](const Field& key_field) {
               const auto path = read_path(key_field, true);
               if (!path || path->empty()) return;
               std::string error;
               relay_credentials_ = load_relay_credentials(*path, error);
               if (!relay_credentials_) {
                 error_at(key_field.value_mark(), key_field.setting + ": " + error);
                 return;
               }
               relay_credentials_mark_ = key_field.value_mark();
               delivery.relay_credentials = *path;
             }}});
}

void ConfigReader::attach_relay_credentials(Config& config) {
  if (!relay_credentials_) return;
  for (auto& [next_hop, credentials] : *relay_credentials_) {
    bool used = false;
    for (auto& [domain, route] : config.routes) {
      if (route.transport != Route::Transport::smtp) continue;
      const std::string& host =
          route.next_hop_name.empty() ? route.next_hop.host : route.next_hop_name;
      if (relay_credentials_key(host, route.next_hop.port) != next_hop) continue;
      route.next_hop.auth_login = credentials.login;
      route.next_hop.auth_password = credentials.password;
      // RFC 4954 §4 lets a client send PLAIN in the clear; stokend never
      // does: a next hop with credentials is reached over TLS or not at all.
      route.next_hop.tls_policy = TlsPolicy::required;
      used = true;
    }
    if (!used) {
      // A typo in the key would otherwise relay without AUTH and be refused.
      error_at(relay_credentials_mark_,
               "delivery.relay_credentials: " + next_hop + " is the next hop of no smtp route");
    }
  }
}

void ConfigReader::read_domain_map(
    const Field& field, std::string_view what,
    const std::function<void(const std::string& domain, const Field& value_field,
                             const YAML::Mark& key_mark)>& read_entry) {
  if (field.value.IsNull()) return;
  if (!field.value.IsMap()) {
    error_at(field.value_mark(), field.setting + ": expected a map of domain: " +
                                     std::string(what) + ", got " + describe(field.value));
    return;
  }
  for (const auto& entry : field.value) {
    const YAML::Node& key = entry.first;
    const std::string domain = key.IsScalar() ? ascii_lowercase(key.Scalar()) : std::string();
    if (domain != "*" && !is_domain_name(domain)) {
      error_at(key.Mark(), field.setting + ": '" + (key.IsScalar() ? key.Scalar() : describe(key)) +
                               "' is not a domain name or '*'");
      continue;
    }
    read_entry(domain, Field{field.setting + "." + domain, entry.second, key.Mark()}, key.Mark());
  }
}

void ConfigReader::read_routes(const Field& field, Config& config) {
  read_domain_map(
      field, "route",
      [&](const std::string& domain, const Field& route_field, const YAML::Mark& key_mark) {
        const auto text = read_string(route_field);
        if (!text) return;
        std::string error;
        auto route = parse_route(*text, error);
        if (!route) {
          error_at(route_field.value_mark(), route_field.setting + ": " + error);
          return;
        }
        if (!config.routes.emplace(domain, std::move(*route)).second) {
          error_at(key_mark, field.setting + ": duplicate route for '" + domain + "'");
        }
      });
}

void ConfigReader::read_tls_policies(const Field& field, Config& config) {
  read_domain_map(
      field, "policy",
      [&](const std::string& domain, const Field& policy_field, const YAML::Mark& key_mark) {
        const auto text = read_string(policy_field);
        if (!text) return;
        const auto level = parse_tls_policy_level(*text);
        if (!level) {
          error_at(policy_field.value_mark(), policy_field.setting + ": unknown policy '" + *text +
                                                  "' (expected " + tls_policy_levels + ")");
          return;
        }
        if (!config.tls_policies.emplace(domain, *level).second) {
          error_at(key_mark, field.setting + ": duplicate policy for '" + domain + "'");
        }
      });
}

void ConfigReader::read_recipient_probe(const Field& field, Config& config) {
  RecipientProbeConfig& probe = config.recipient_probe;
  // The domains are checked against local_domains and routes once the whole
  // file is read (either may come later); their places are kept for that.
  read_map(field.value, field.setting, field.value_mark(),
           {{"domains",
             [&](const Field& key_field) {
               if (!key_field.value.IsSequence()) {
                 error_at(key_field.value_mark(), key_field.setting +
                                                      ": expected a list of "
                                                      "domains, got " +
                                                      describe(key_field.value));
                 return;
               }
               for (std::size_t index = 0; index < key_field.value.size(); ++index) {
                 const YAML::Node node = key_field.value[index];
                 if (!node.IsScalar()) {
                   error_at(node.Mark(), key_field.setting + "[" + std::to_string(index) +
                                             "]: expected a domain, got " + describe(node));
                   continue;
                 }
                 probe.domains.push_back(ascii_lowercase(node.Scalar()));
                 probe_domain_marks_.push_back(node.Mark());
               }
             }},
            {"positive_ttl", duration_into(probe.positive_ttl)},
            {"negative_ttl", duration_into(probe.negative_ttl)}});
}

void ConfigReader::check_recipient_probe_domains(Config& config) {
  RouteTable routes(config.routes);
  for (std::size_t i = 0; i < config.recipient_probe.domains.size(); ++i) {
    const std::string& domain = config.recipient_probe.domains[i];
    const std::string setting = "recipient_probe.domains[" + std::to_string(i) + "]";
    if (!config.is_local_domain(domain)) {
      error_at(probe_domain_marks_[i], setting + ": '" + domain + "' is not a local domain");
      continue;
    }
    const Route route = routes.route_for(domain, true);
    if (route.transport != Route::Transport::smtp && route.transport != Route::Transport::lmtp) {
      error_at(
          probe_domain_marks_[i],
          setting + ": '" + domain + "' has no smtp or lmtp route, so there is no next hop to ask");
    } else if (!route.next_hop_name.empty()) {
      // The probe answers at RCPT time, where a DNS wait would hold the
      // client: it asks a next hop given as an IP literal only.
      error_at(probe_domain_marks_[i], setting + ": '" + domain + "' is routed to a host name (" +
                                           route.next_hop_name +
                                           "); the recipient probe needs an IP literal");
    }
  }
}

}  // namespace stokend::config_reading
