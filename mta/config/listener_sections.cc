// Readers of who stokend is and where it listens: hostname, local_domains,
// listeners (each checked for a duplicate address and port) and tls. See config_reader.h.
#include "mta/config/config_reader.h"
#include "mta/config/pem_checks.h"

namespace stokend::config_reading {

void ConfigReader::read_hostname(const Field& field, Config& config) {
  const auto name = read_string(field);
  if (!name) return;
  if (!name->empty() && !is_domain_name(*name)) {
    error_at(field.value_mark(), field.setting + ": '" + *name + "' is not a valid host name");
    return;
  }
  config.hostname = *name;
}

void ConfigReader::read_local_domains(const Field& field, Config& config) {
  if (!field.value.IsSequence()) {
    error_at(field.value_mark(),
             field.setting + ": expected a list of domains, got " + describe(field.value));
    return;
  }
  if (field.value.size() == 0) {
    error_at(field.value_mark(), field.setting + ": at least one local domain is required");
    return;
  }
  for (std::size_t index = 0; index < field.value.size(); ++index) {
    const YAML::Node domain_node = field.value[index];
    const std::string setting = field.setting + "[" + std::to_string(index) + "]";
    if (!domain_node.IsScalar()) {
      error_at(domain_node.Mark(), setting + ": expected a domain, got " + describe(domain_node));
      continue;
    }
    const std::string domain = ascii_lowercase(domain_node.Scalar());
    if (!is_domain_name(domain)) {
      error_at(domain_node.Mark(),
               setting + ": '" + domain_node.Scalar() + "' is not a valid domain name");
      continue;
    }
    if (config.is_local_domain(domain)) {
      error_at(domain_node.Mark(), setting + ": '" + domain + "' is listed twice");
      continue;
    }
    config.local_domains.push_back(domain);
  }
}

void ConfigReader::read_listeners(const Field& field, Config& config) {
  if (!field.value.IsSequence()) {
    error_at(field.value_mark(),
             field.setting + ": expected a list of listeners, got " + describe(field.value));
    return;
  }
  if (field.value.size() == 0) {
    error_at(field.value_mark(), field.setting + ": at least one listener is required");
    return;
  }
  for (std::size_t index = 0; index < field.value.size(); ++index) {
    read_listener(field.value[index], field.setting + "[" + std::to_string(index) + "]", config);
  }
}

void ConfigReader::read_listener(const YAML::Node& node, const std::string& setting,
                                 Config& config) {
  ListenerConfig listener;
  std::optional<std::string> canonical_address = canonical_ip_address(listener.address);
  const std::size_t errors_before = errors_.size();
  read_map(
      node, setting, node.Mark(),
      {{"role",
        [&](const Field& field) {
          if (const auto role = read_choice<Role>(
                  field, "role", {{"mx", Role::mx}, {"submission", Role::submission}})) {
            listener.role = *role;
          }
        }},
       {"address",
        [&](const Field& field) {
          const auto address = read_string(field);
          if (!address) return;
          canonical_address = canonical_ip_address(*address);
          if (!canonical_address) {
            error_at(field.value_mark(),
                     field.setting + ": '" + *address + "' is not an IPv4 or IPv6 address");
            return;
          }
          listener.address = *address;
        }},
       {"port",
        [&](const Field& field) {
          const auto port =
              field.value.IsScalar() ? parse_decimal(field.value.Scalar()) : std::nullopt;
          if (!port || *port < 1 || *port > 65535) {
            error_at(field.value_mark(), field.setting + ": expected a port number 1-65535, got " +
                                             describe(field.value));
            return;
          }
          listener.port = static_cast<std::uint16_t>(*port);
        }},
       {"tls",
        [&](const Field& field) {
          if (const auto mode = read_choice<TlsMode>(field, "tls mode",
                                                     {{"none", TlsMode::none},
                                                      {"starttls", TlsMode::starttls},
                                                      {"implicit", TlsMode::implicit}})) {
            listener.tls = *mode;
          }
        }},
       {"proxy_protocol",
        [&](const Field& field) {
          if (const auto on = read_boolean(field)) listener.proxy_protocol = *on;
        }},
       {"trusted_proxies", [&](const Field& field) { read_trusted_proxies(field, listener); }}},
      {"role", "port"});
  if (listener.proxy_protocol && listener.trusted_proxies.empty() &&
      errors_.size() == errors_before) {
    error_at(node.Mark(), setting +
                              ": proxy_protocol needs trusted_proxies, the load balancers' "
                              "addresses (a PROXY header from anyone else is refused)");
  }
  if (!listener.proxy_protocol && !listener.trusted_proxies.empty()) {
    error_at(node.Mark(), setting + ": trusted_proxies is set but proxy_protocol is not");
  }
  // A listener with any error of its own is not checked for duplicates: its
  // address or port may not be what the operator meant.
  if (errors_.size() != errors_before || !canonical_address) return;

  const std::string endpoint = *canonical_address + ":" + std::to_string(listener.port);
  const auto [first, inserted] = listener_lines_.emplace(endpoint, node.Mark().line + 1);
  if (!inserted) {
    error_at(node.Mark(), setting + ": duplicate listener " + endpoint +
                              " (already defined at line " + std::to_string(first->second) + ")");
    return;
  }
  config.listeners.push_back(listener);
}

void ConfigReader::read_trusted_proxies(const Field& field, ListenerConfig& listener) {
  if (!field.value.IsSequence()) {
    error_at(
        field.value_mark(),
        field.setting + ": expected a list of addresses or networks, got " + describe(field.value));
    return;
  }
  for (std::size_t index = 0; index < field.value.size(); ++index) {
    const YAML::Node entry = field.value[index];
    const std::string setting = field.setting + "[" + std::to_string(index) + "]";
    const auto prefix =
        entry.IsScalar() ? IpPrefix::parse(entry.Scalar()) : std::optional<IpPrefix>();
    if (!prefix) {
      error_at(entry.Mark(), setting + ": expected an IP address or network like 10.0.0.0/8, got " +
                                 describe(entry));
      continue;
    }
    listener.trusted_proxies.push_back(*prefix);
  }
}

void ConfigReader::read_tls(const Field& field, TlsConfig& tls) {
  std::optional<YAML::Mark> certificate_mark;
  std::optional<YAML::Mark> private_key_mark;
  // Each file is checked as the daemon will load it (pem_checks.h); the
  // pair is checked for belonging together only when both load.
  bool both_load = true;
  auto read_existing_file = [&](const Field& key_field, std::filesystem::path& target,
                                std::optional<YAML::Mark>& mark, auto pem_problem) {
    const auto path = read_path(key_field, true);
    if (!path || path->empty()) return;
    target = *path;
    mark = key_field.value_mark();
    if (const auto reason = unreadable_reason(*path)) {
      error_at(*mark, key_field.setting + ": cannot read '" + path->string() + "': " + *reason);
      both_load = false;
    } else if (const auto problem = pem_problem(*path)) {
      error_at(*mark, key_field.setting + ": " + *problem);
      both_load = false;
    }
  };
  read_map(field.value, field.setting, field.value_mark(),
           {{"certificate",
             [&](const Field& key_field) {
               read_existing_file(key_field, tls.certificate, certificate_mark,
                                  certificate_chain_problem);
             }},
            {"private_key",
             [&](const Field& key_field) {
               read_existing_file(key_field, tls.private_key, private_key_mark,
                                  private_key_problem);
             }},
            {"generated_directory", [&](const Field& key_field) {
               if (const auto path = read_path(key_field, false)) tls.generated_directory = *path;
             }}});
  if (certificate_mark.has_value() != private_key_mark.has_value()) {
    const bool key_missing = certificate_mark.has_value();
    error_at(key_missing ? *certificate_mark : *private_key_mark,
             field.setting + ": certificate and private_key must be given together (" +
                 (key_missing ? "private_key" : "certificate") + " is missing)");
  } else if (certificate_mark && both_load) {
    if (const auto mismatch = key_mismatch(tls.certificate, tls.private_key)) {
      error_at(*private_key_mark, field.setting + ".private_key: " + *mismatch);
    }
  }
}

}  // namespace stokend::config_reading
