// stokend's configuration: the parsed form of stokend.yaml.
//
// Contract: load_config() either returns a complete Config (every field set,
// defaults from defaults.h filled in) or a list of errors, each located as
// FILE:LINE:COL. The daemon refuses to start with errors; `stokend
// --check-config FILE` prints them. Relative paths are kept as written and
// resolve against the working directory.
#pragma once

#include <chrono>
#include <cstdint>
#include <filesystem>
#include <optional>
#include <string>
#include <vector>

#include "mta/defaults.h"

namespace stokend {

enum class Role { mx, submission };
enum class TlsMode { none, starttls, implicit };

struct ListenerConfig {
  Role role = Role::mx;
  std::string address = "127.0.0.1";  // IPv4 or IPv6 literal
  std::uint16_t port = 0;
  TlsMode tls = TlsMode::starttls;
};

struct TlsConfig {
  // Empty certificate and key: a self-signed pair is generated into
  // generated_directory on first start.
  std::filesystem::path certificate;
  std::filesystem::path private_key;
  std::filesystem::path generated_directory = defaults::generated_tls_directory;
};

struct LimitsConfig {
  std::size_t max_message_size = defaults::max_message_size;
  std::size_t max_line_length = defaults::max_line_length;
  std::size_t max_recipients = defaults::max_recipients;
  std::size_t max_connections = defaults::max_connections;
  std::size_t max_connections_per_ip = defaults::max_connections_per_ip;
  std::size_t error_limit = defaults::error_limit;
  std::size_t max_auth_failures = defaults::max_auth_failures;
};

struct TimeoutsConfig {
  std::chrono::milliseconds idle = defaults::idle_timeout;
  std::chrono::milliseconds command = defaults::command_timeout;
  std::chrono::milliseconds data = defaults::data_timeout;
  std::chrono::milliseconds tls_handshake = defaults::tls_handshake_timeout;
  std::chrono::milliseconds auth_failure_base_delay = defaults::auth_failure_base_delay;
  std::chrono::milliseconds auth_failure_max_delay = defaults::auth_failure_max_delay;
};

struct Config {
  std::filesystem::path source_file;       // the YAML file this came from
  std::string hostname;                    // never empty after load_config()
  std::vector<std::string> local_domains;  // lowercase
  std::filesystem::path users_file = defaults::users_file;
  std::filesystem::path spool_directory = defaults::spool_directory;
  std::filesystem::path maildir_root = defaults::maildir_root;
  std::vector<ListenerConfig> listeners;
  TlsConfig tls;
  LimitsConfig limits;
  TimeoutsConfig timeouts;
  bool normalise_bare_line_endings = defaults::normalise_bare_line_endings;
  unsigned worker_threads = defaults::worker_threads;
  std::string log_level = defaults::log_level;
  std::filesystem::path log_file;  // empty: standard error

  bool is_local_domain(std::string_view domain) const;  // case-insensitive
};

struct ConfigError {
  std::string file;
  int line = 0;    // 1-based; 0 when the error is not tied to a place
  int column = 0;  // 1-based
  std::string message;

  std::string to_string() const;  // "FILE:LINE:COL: message"
};

struct ConfigLoadResult {
  std::optional<Config> config;
  std::vector<ConfigError> errors;
};

ConfigLoadResult load_config(const std::filesystem::path& file);

}  // namespace stokend
