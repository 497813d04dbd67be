// stokend's configuration: the parsed form of stokend.yaml.
//
// Contract: load_config() either returns a complete Config (every field set,
// defaults from defaults.h filled in) or a list of errors, each located as
// FILE:LINE:COL. The daemon refuses to start with errors; `stokend
// --check-config FILE` prints them. Relative paths are kept as written and
// resolve against the working directory. The readers live beside this file,
// one per group of sections (config_reader.h); every default they start
// from is in mta/defaults.h or queue/queue_defaults.h.
#pragma once

#include <chrono>
#include <cstdint>
#include <filesystem>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "common/ip_prefix.h"
#include "mta/auth/dovecot_endpoint.h"
#include "mta/defaults.h"
#include "mta/milter_settings.h"
#include "mta/routes.h"
#include "mta/tls_policies.h"
#include "queue/queue_defaults.h"

namespace stokend {

enum class Role { mx, submission };
enum class TlsMode { none, starttls, implicit };

struct ListenerConfig {
  Role role = Role::mx;
  std::string address = "127.0.0.1";  // IPv4 or IPv6 literal
  std::uint16_t port = 0;
  TlsMode tls = TlsMode::starttls;
  // Behind a load balancer: every connection opens with a PROXY protocol
  // header (v1 or v2) naming the client, and comes from one of
  // trusted_proxies (never empty when proxy_protocol is set).
  bool proxy_protocol = false;
  std::vector<IpPrefix> trusted_proxies;

  bool operator==(const ListenerConfig&) const = default;
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
  std::size_t max_hops = defaults::max_hops;  // Received fields before a message is a loop
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

// The retry schedule and delivery concurrency of the queue. Defaults live in
// queue/queue_defaults.h, since the queue cannot depend on the daemon.
struct QueueConfig {
  std::chrono::milliseconds first_retry = queue::defaults::first_retry;
  std::chrono::milliseconds max_retry_interval = queue::defaults::max_retry_interval;
  std::chrono::milliseconds lifetime = queue::defaults::message_lifetime;
  // The queue key delay_warning_time (Postfix's name), or delay_warning_after.
  std::chrono::milliseconds delay_warning_after = queue::defaults::delay_warning_after;  // 0: never
  std::size_t max_concurrent_deliveries = queue::defaults::max_concurrent_deliveries;
  double backoff_factor = queue::defaults::backoff_factor;   // >= 1
  double jitter = queue::defaults::retry_jitter;             // fraction of an interval, 0 .. 1
  std::size_t segment_size = queue::defaults::segment_size;  // spool segment file, bytes
  // Fraction of a sealed spool segment still in use at or below which it is
  // compacted, 0 .. <1 (queue/spool.h).
  double compaction_threshold = queue::defaults::compaction_threshold;
  // New mail is refused with 452 4.3.1 while the spool's file system has
  // less than this free (queue/free_space.h); 0: no reserve. Never empty
  // after load_config(): absent, queue::defaults::min_free_space of
  // limits.max_message_size.
  std::optional<std::size_t> min_free_space;
};

struct DnsConfig {
  // "127.0.0.1:5353" or a comma-separated list; empty: the system's resolv.conf.
  std::string servers;
  std::chrono::milliseconds timeout = defaults::dns_timeout;
};

// Where the tokens are kept: an SQLite file of this node (the default), or
// a Redis server several nodes share (tokens/redis_token_store.h).
enum class TokenStoreBackend { sqlite, redis };

struct RedisStoreConfig {
  std::string url;                      // redis://HOST:PORT/DB or unix:PATH (tokens/redis_url.h)
  std::filesystem::path password_file;  // first line: the AUTH password; empty: none
  std::chrono::milliseconds connect_timeout = defaults::redis_connect_timeout;
  std::chrono::milliseconds command_timeout = defaults::redis_command_timeout;
  unsigned wait_replicas = defaults::redis_wait_replicas;
  std::chrono::milliseconds wait_timeout = defaults::redis_wait_timeout;
  std::string key_prefix = defaults::redis_key_prefix;
  bool cache = defaults::redis_verification_cache;  // the daemon's verification cache

  bool operator==(const RedisStoreConfig&) const = default;
};

// Submission tokens: where they are kept and how long they live. The paths
// are never empty after load_config(): absent, they default to files in
// spool_directory. Durations are whole seconds.
struct TokenConfig {
  TokenStoreBackend store_backend = TokenStoreBackend::sqlite;
  std::filesystem::path store;         // the SQLite token store (tokens/sqlite_token_store.h)
  RedisStoreConfig redis;              // backend redis
  std::filesystem::path secrets_file;  // the secret rings (tokens/secret_rings.h)
  std::chrono::seconds temporary_validity = defaults::token_temporary_validity;
  std::chrono::seconds permanent_validity = defaults::token_permanent_validity;
  std::chrono::seconds clock_skew = defaults::token_clock_skew;
  std::chrono::seconds renew_before = defaults::token_renew_before;  // < permanent_validity
  // Drop Submission-Token fields from inbound mail once harvested
  // (tokens/harvest.h): the tokens are credentials, and the wallet has them.
  bool remove_submission_token_headers = defaults::remove_submission_token_headers;
  // Mirror each user's tokens into the COI/Contacts folder of the built-in
  // Maildir store (mta/store/contacts_folder_sync.h).
  bool sync_contacts_folder = defaults::sync_contacts_folder;
};

struct DeliveryConfig {
  std::uint16_t mx_port = defaults::mx_port;  // where MX hosts are contacted
  // PEM trust anchors for the "verify" TLS policy; empty: the system CA store.
  std::filesystem::path tls_policy_ca_file = defaults::tls_policy_ca_file;
  // Login and password per smtp:[host]:port next hop (mta/relay_credentials.h);
  // load_config() puts them on the matching routes.
  std::filesystem::path relay_credentials = defaults::relay_credentials;
};

struct FastLaneConfig {
  bool enabled = defaults::fast_lane_enabled;
  // PEM trust anchors for Token Server certificates; empty: the system store.
  std::filesystem::path ca_file = defaults::fast_lane_ca_file;
  bool mx_fallback = defaults::fast_lane_mx_fallback;
  std::uint16_t mx_fallback_port = defaults::fast_lane_mx_fallback_port;
  std::chrono::milliseconds timeout = defaults::fast_lane_timeout;
  std::chrono::milliseconds idle_timeout = defaults::fast_lane_idle_timeout;
  TokenDistribution distribute_tokens = defaults::distribute_tokens;
  // Per recipient domain (lowercase; "*" for every other one): the dialect
  // the fast lane speaks to its Token Server. Absent: fast_lane_dialect.
  std::map<std::string, TokenDialect, std::less<>> dialects;
};

// Local domains relayed to a next hop (smtp or lmtp route) whose
// recipients are checked there at RCPT time (mta/delivery/recipient_probe.h).
struct RecipientProbeConfig {
  std::vector<std::string> domains;  // lowercase, each local with an smtp or lmtp route
  std::chrono::milliseconds positive_ttl = defaults::recipient_probe_positive_ttl;
  std::chrono::milliseconds negative_ttl = defaults::recipient_probe_negative_ttl;

  bool probes(std::string_view domain) const;  // case-insensitive
};

// Who owns what the built-in Maildir store creates, so that an IMAP server
// running as another user (Dovecot as vmail) can read and move the files.
// Empty names keep the daemon's own user and group; the modes are applied
// exactly, whatever the umask (mta/store/maildir_layout.h).
struct MaildirPermissionsConfig {
  std::string owner;
  std::string group;
  unsigned file_mode = defaults::maildir_file_mode;
  unsigned directory_mode = defaults::maildir_directory_mode;

  bool operator==(const MaildirPermissionsConfig&) const = default;
};

// Where logins and local users are looked up (auth:): the users file, or a
// provider's Dovecot through its auth client and auth-userdb sockets
// (mta/auth/dovecot_auth_client.h, mta/auth/dovecot_userdb.h).
struct AuthConfig {
  AuthBackend backend = defaults::auth_backend;
  auth::DovecotEndpoint socket;         // dovecot: the auth client listener (AUTH)
  auth::DovecotEndpoint userdb_socket;  // dovecot: the auth-userdb listener (RCPT)
  std::chrono::milliseconds cache_ttl = defaults::dovecot_cache_ttl;
  std::chrono::milliseconds timeout = defaults::dovecot_timeout;

  bool operator==(const AuthConfig&) const = default;
};

// The metrics endpoint (daemon/metrics_server.h): off while port is 0.
struct MetricsConfig {
  std::string address;     // an IPv4 or IPv6 literal, as written (without brackets)
  std::uint16_t port = 0;  // 0: off (defaults::metrics_listen is empty)
  std::size_t max_connections = defaults::metrics_max_connections;
  std::chrono::milliseconds timeout = defaults::metrics_timeout;
  std::size_t max_request_size = defaults::metrics_max_request_size;

  bool enabled() const { return port != 0; }
};

struct Config {
  std::filesystem::path source_file;       // the YAML file this came from
  std::string hostname;                    // never empty after load_config()
  std::vector<std::string> local_domains;  // lowercase
  std::filesystem::path users_file = defaults::users_file;
  // Address rewriting (mta/addresses/): the characters that start an
  // address extension (alice+news@ is alice's; empty: none), and the
  // aliases file (empty: no aliases).
  std::string recipient_delimiter = defaults::recipient_delimiter;
  std::filesystem::path aliases;
  std::filesystem::path spool_directory = defaults::spool_directory;
  std::filesystem::path maildir_root = defaults::maildir_root;
  std::filesystem::path control_socket = defaults::control_socket;
  std::vector<ListenerConfig> listeners;
  TlsConfig tls;
  LimitsConfig limits;
  TimeoutsConfig timeouts;
  QueueConfig queue;
  DnsConfig dns;
  DeliveryConfig delivery;
  TokenConfig tokens;
  FastLaneConfig fast_lane;
  RecipientProbeConfig recipient_probe;
  MetricsConfig metrics;
  AuthConfig auth;
  // Applied in this order to every message of their roles (not to the
  // Token Server's deliveries).
  std::vector<MilterConfig> milters;
  // Recipient domain (lowercase) or "*" → how mail for it leaves the queue.
  std::map<std::string, Route> routes;
  // Recipient domain (lowercase) or "*" → outbound TLS policy (mta/tls_policies.h).
  std::map<std::string, TlsPolicyLevel> tls_policies;
  bool normalise_bare_line_endings = defaults::normalise_bare_line_endings;
  NulOctets nul_octets = defaults::nul_octets;
  unsigned worker_threads = defaults::worker_threads;
  std::string log_level = defaults::log_level;
  std::filesystem::path log_file;          // empty: standard error
  bool log_syslog = defaults::log_syslog;  // also (or, without log_file, only) to syslog
  std::filesystem::path log_syslog_socket = defaults::log_syslog_socket;
  // Privileges (daemon/privileges.h): the user and group a daemon started
  // as root runs as once its ports are bound. Empty user: stays who it was
  // started as, which for root needs allow_root. Empty group: the user's
  // primary group. Names are checked to exist when the file is read.
  std::string user;
  std::string group;
  bool allow_root = defaults::allow_root;
  MaildirPermissionsConfig maildir;

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
