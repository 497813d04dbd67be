// The reader of the metrics section: where the metrics endpoint listens
// (daemon/metrics_server.h) and its limits. See config_reader.h.
//
//   metrics:
//     listen: 127.0.0.1:9325     # or [::1]:9325; empty or absent: off
//     max_connections: 16
//     timeout: 10s
//     max_request_size: 8K
#include <charconv>

#include "mta/config/config_reader.h"

namespace stokend::config_reading {

std::optional<ListenAddress> parse_listen_address(std::string_view text) {
  std::string_view host;
  std::string_view port;
  if (text.starts_with('[')) {
    // RFC 3986 §3.2.2: an IPv6 literal in brackets, so its colons are not
    // taken for the port's.
    const auto close = text.find(']');
    if (close == std::string_view::npos || close + 1 >= text.size() || text[close + 1] != ':') {
      return std::nullopt;
    }
    host = text.substr(1, close - 1);
    port = text.substr(close + 2);
    if (host.find(':') == std::string_view::npos) return std::nullopt;  // brackets: IPv6 only
  } else {
    const auto colon = text.rfind(':');
    if (colon == std::string_view::npos) return std::nullopt;
    host = text.substr(0, colon);
    port = text.substr(colon + 1);
    if (host.find(':') != std::string_view::npos) return std::nullopt;  // IPv6 needs brackets
  }
  unsigned number = 0;
  const auto [end, status] = std::from_chars(port.data(), port.data() + port.size(), number);
  if (port.empty() || port.size() > 5 || status != std::errc() ||
      end != port.data() + port.size() || number < 1 || number > 65535) {
    return std::nullopt;
  }
  const std::string address(host);
  if (!canonical_ip_address(address)) return std::nullopt;
  return ListenAddress{address, static_cast<std::uint16_t>(number)};
}

void ConfigReader::read_metrics(const Field& field, MetricsConfig& metrics) {
  read_map(field.value, field.setting, field.value_mark(),
           {{"listen",
             [&](const Field& key_field) {
               const auto text = read_string(key_field);
               if (!text || text->empty()) return;  // off
               const auto listen = parse_listen_address(*text);
               if (!listen) {
                 error_at(key_field.value_mark(),
                          key_field.setting +
                              ": expected ADDRESS:PORT with an IP address (IPv6 "
                              "in brackets: [::1]:9325), got '" +
                              *text + "'");
                 return;
               }
               metrics.address = listen->address;
               metrics.port = listen->port;
               metrics_listen_mark_ = key_field.value_mark();
             }},
            {"max_connections",
             [&](const Field& key_field) {
               if (const auto number = read_positive_integer(key_field)) {
                 metrics.max_connections = static_cast<std::size_t>(*number);
               }
             }},
            {"timeout", duration_into(metrics.timeout)},
            {"max_request_size", [&](const Field& key_field) {
               if (const auto size = read_size(key_field)) metrics.max_request_size = *size;
             }}});
}

void ConfigReader::check_metrics_endpoint(const Config& config) {
  if (!config.metrics.enabled() || !metrics_listen_mark_) return;
  const std::string endpoint =
      *canonical_ip_address(config.metrics.address) + ":" + std::to_string(config.metrics.port);
  if (const auto found = listener_lines_.find(endpoint); found != listener_lines_.end()) {
    error_at(*metrics_listen_mark_, "metrics.listen: " + endpoint +
                                        " is the address of the listener at line " +
                                        std::to_string(found->second));
  }
}

}  // namespace stokend::config_reading
