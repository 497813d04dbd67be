// The machinery shared by the readers of stokend.yaml's sections: the
// ConfigReader that walks the YAML tree and collects errors, the Field it
// hands to each setting's reader, and the value parsers (strings, paths,
// sizes, durations, booleans, ports, choices) with their error wording.
//
// Contract: internal to mta/config/. Every reader reports a problem through
// error_at() at the FILE:LINE:COL of the offending key or value and carries
// on, so load_config() (config.h) can report every error of a file at once.
// The readers of each section are defined in the file named after the
// section (listener_sections.cc, limit_sections.cc, queue_section.cc,
// routing_sections.cc, token_sections.cc, service_sections.cc,
// metrics_section.cc, milter_section.cc); the top level and load_config()
// in load_config.cc; this core in config_reader.cc.
#pragma once

#include <yaml-cpp/yaml.h>

#include <chrono>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <initializer_list>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "common/ascii.h"
#include "mta/config/config.h"
#include "mta/relay_credentials.h"

namespace stokend::config_reading {

// What a node holds, for "expected X, got Y" messages.
std::string describe(const YAML::Node& node);

// A duration as the config file would spell it: "16s", "500ms".
std::string format_duration(std::chrono::milliseconds duration);

// The canonical text of an IP literal, so "::1" and "0::1" count as the same
// listener address; nullopt when text is not an IPv4 or IPv6 literal.
std::optional<std::string> canonical_ip_address(const std::string& text);

// metrics.listen: "127.0.0.1:9325" or "[::1]:9325" (RFC 3986 §3.2.2
// brackets around IPv6); nullopt unless the address is an IP literal and
// the port 1-65535.
struct ListenAddress {
  std::string address;  // without brackets
  std::uint16_t port = 0;
};
std::optional<ListenAddress> parse_listen_address(std::string_view text);

// Why path cannot be read, or nullopt when it can.
std::optional<std::string> unreadable_reason(const std::filesystem::path& path);

// One key of a map being read, with everything needed to report about it.
struct Field {
  std::string setting;  // "limits.max_recipients": how messages name it
  YAML::Node value;
  YAML::Mark key_mark;

  // A null value (`key:` with nothing after it) carries the position of
  // whatever follows it in the file, so point at the key instead.
  YAML::Mark value_mark() const { return value.IsNull() ? key_mark : value.Mark(); }
};

using FieldReader = std::function<void(const Field&)>;
using FieldReaders = std::vector<std::pair<std::string_view, FieldReader>>;

// Reads one file's YAML into a Config, accumulating errors instead of throwing.
class ConfigReader {
 public:
  explicit ConfigReader(std::string file_name) : file_name_(std::move(file_name)) {}

  void read_document(const YAML::Node& root, Config& config);
  std::vector<ConfigError> take_errors() { return std::move(errors_); }

 private:
  void error_at(const YAML::Mark& mark, std::string message);

  // Calls the reader of each key present in map and reports unknown,
  // duplicate and (listed in required) missing keys. A null map counts as
  // empty, so `limits:` with nothing under it keeps every default.
  void read_map(const YAML::Node& map, const std::string& section, const YAML::Mark& where,
                const FieldReaders& readers, const std::vector<std::string_view>& required = {});

  std::optional<std::string> read_string(const Field& field);
  std::optional<std::filesystem::path> read_path(const Field& field, bool may_be_empty);
  std::optional<std::uint64_t> read_positive_integer(const Field& field);
  std::optional<std::size_t> read_size(const Field& field);
  std::optional<std::chrono::milliseconds> read_duration(const Field& field, bool may_be_zero);
  std::optional<bool> read_boolean(const Field& field);
  // One of a fixed set of words, e.g. tls: none | starttls | implicit; an
  // unknown word is "unknown WHAT 'x' (expected a, b or c)".
  template <class Value>
  std::optional<Value> read_choice(
      const Field& field, std::string_view what,
      std::initializer_list<std::pair<std::string_view, Value>> choices);

  // Readers that store a setting's value into target (read_map entries).
  FieldReader duration_into(std::chrono::milliseconds& target, bool may_be_zero = false);
  FieldReader boolean_into(bool& target);

  std::optional<std::uint16_t> read_port(const Field& field);
  // A PEM file of CA certificates the daemon will read later: checked now
  // (readable, and loads as trust anchors: pem_checks.h), so a typo stops
  // the daemon instead of deferring mail. Empty: nothing to check.
  std::optional<std::filesystem::path> read_ca_file(const Field& field);
  // A file the daemon will read later (a password file): checked now to be
  // readable, so a typo stops the daemon. Empty: nothing to check.
  std::optional<std::filesystem::path> read_readable_file(const Field& field);

  // load_config.cc: top-level settings.
  void read_log_level(const Field& field, Config& config);

  // listener_sections.cc
  void read_hostname(const Field& field, Config& config);
  void read_local_domains(const Field& field, Config& config);
  void read_listeners(const Field& field, Config& config);
  void read_listener(const YAML::Node& node, const std::string& setting, Config& config);
  void read_trusted_proxies(const Field& field, ListenerConfig& listener);
  void read_tls(const Field& field, TlsConfig& tls);

  // limit_sections.cc
  void read_limits(const Field& field, LimitsConfig& limits);
  void read_timeouts(const Field& field, TimeoutsConfig& timeouts);

  // queue_section.cc
  void read_queue(const Field& field, QueueConfig& queue);

  // routing_sections.cc
  void read_dns(const Field& field, DnsConfig& dns);
  void read_delivery(const Field& field, DeliveryConfig& delivery);
  // A map of domain (or "*") to a value: checks the map and its keys, then
  // hands each entry to read_entry.
  void read_domain_map(const Field& field, std::string_view what,
                       const std::function<void(const std::string& domain, const Field& value_field,
                                                const YAML::Mark& key_mark)>& read_entry);
  void read_routes(const Field& field, Config& config);
  void read_tls_policies(const Field& field, Config& config);
  void read_recipient_probe(const Field& field, Config& config);
  void check_recipient_probe_domains(Config& config);
  // After the whole file: the credentials of delivery.relay_credentials go
  // onto the smtp routes whose next hop they name (routes may come later).
  void attach_relay_credentials(Config& config);

  // service_sections.cc: user, group, maildir
  void read_account(const Field& field, std::string& target, bool is_group);
  void read_maildir_permissions(const Field& field, MaildirPermissionsConfig& maildir);
  std::optional<unsigned> read_mode(const Field& field);

  // token_sections.cc
  void read_tokens(const Field& field, TokenConfig& tokens);
  void read_token_store(const Field& field, TokenConfig& tokens);
  void read_fast_lane(const Field& field, FastLaneConfig& fast_lane);

  // metrics_section.cc
  void read_metrics(const Field& field, MetricsConfig& metrics);
  // After the whole file: the endpoint is not one of the SMTP listeners'.
  void check_metrics_endpoint(const Config& config);

  // auth_section.cc
  void read_auth(const Field& field, AuthConfig& auth);
  // After the whole file: with Dovecot's users, no local domain is
  // delivered to the built-in Maildir, which knows only the users file.
  void check_auth_routes(const Config& config);
  // milter_section.cc
  void read_milters(const Field& field, Config& config);
  void read_milter(const YAML::Node& node, const std::string& setting, Config& config);

  std::string file_name_;
  std::vector<ConfigError> errors_;
  // Where each recipient_probe domain was given, for the checks that need
  // the whole file (check_recipient_probe_domains).
  std::vector<YAML::Mark> probe_domain_marks_;
  // canonical "address:port" → line of the listener that defined it first
  std::map<std::string, int> listener_lines_;
  std::optional<YAML::Mark> metrics_listen_mark_;        // where metrics.listen was given
  std::optional<YAML::Mark> auth_mark_;                  // where auth.backend was given
  std::optional<RelayCredentialMap> relay_credentials_;  // as read, before attaching
  YAML::Mark relay_credentials_mark_;
};

template <class Value>
std::optional<Value> ConfigReader::read_choice(
    const Field& field, std::string_view what,
    std::initializer_list<std::pair<std::string_view, Value>> choices) {
  const auto word = read_string(field);
  if (!word) return std::nullopt;
  std::string expected;
  std::size_t index = 0;
  for (const auto& [name, value] : choices) {
    if (*word == name) return value;
    expected += (index == 0 ? "" : index + 1 == choices.size() ? " or " : ", ") + std::string(name);
    ++index;
  }
  error_at(field.value_mark(), field.setting + ": unknown " + std::string(what) + " '" + *word +
                                   "' (expected " + expected + ")");
  return std::nullopt;
}

}  // namespace stokend::config_reading
