// Unit tests for loading stokend.yaml (mta/config.h): values, defaults, and
// that every kind of error is reported at the right FILE:LINE:COL.
#include "mta/config.h"

#include <unistd.h>

#include <array>
#include <catch2/catch.hpp>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "tests/support/temporary_directory.h"

using stokend::testing::TemporaryDirectory;
using stokend::testing::write_whole_file;

namespace fs = std::filesystem;
using namespace std::chrono_literals;
using namespace stokend;

namespace {

// Every error of result, one a line, for test failure messages.
std::string all_errors(const ConfigLoadResult& result) {
  std::string text;
  for (const ConfigError& error : result.errors) text += error.to_string() + "\n";
  return text;
}

// The smallest valid configuration: the two required keys.
const std::string minimal_config =
    "local_domains: [example.test]\n"
    "listeners:\n"
    "  - {role: mx, port: 2525}\n";

// Loads text as a config file named stokend.yaml in its own folder.
struct LoadedText {
  TemporaryDirectory directory;
  fs::path file;
  ConfigLoadResult result;

  explicit LoadedText(const std::string& text) : file(directory.path() / "stokend.yaml") {
    write_whole_file(file, text);
    result = load_config(file);
  }

  std::vector<std::string> errors() const {
    std::vector<std::string> texts;
    for (const ConfigError& error : result.errors) texts.push_back(error.to_string());
    return texts;
  }
  // The one expected error, as "LINE:COL: message" (the file name stripped).
  std::string only_error() const {
    REQUIRE(result.errors.size() == 1);
    const std::string text = result.errors[0].to_string();
    REQUIRE(text.starts_with(file.string() + ":"));
    return text.substr(file.string().size() + 1);
  }
};

}  // namespace

TEST_CASE("the shipped sample configuration loads with the quick-start listeners") {
  // Located from this file, so the test runs from any working directory.
  const fs::path sample =
      fs::path(__FILE__).parent_path().parent_path().parent_path() / "etc" / "stokend.yaml";
  const ConfigLoadResult result = load_config(sample);
  INFO(all_errors(result));
  REQUIRE(result.errors.empty());
  REQUIRE(result.config);
  const Config& config = *result.config;
  CHECK(config.local_domains == std::vector<std::string>{"example.test"});
  REQUIRE(config.listeners.size() == 3);
  CHECK(config.listeners[0].role == Role::mx);
  CHECK(config.listeners[0].address == "127.0.0.1");
  CHECK(config.listeners[0].port == 2525);
  CHECK(config.listeners[0].tls == TlsMode::starttls);
  CHECK(config.listeners[1].role == Role::submission);
  CHECK(config.listeners[1].port == 2587);
  CHECK(config.listeners[1].tls == TlsMode::starttls);
  CHECK(config.listeners[2].role == Role::submission);
  CHECK(config.listeners[2].port == 2465);
  CHECK(config.listeners[2].tls == TlsMode::implicit);
  CHECK(config.users_file == "var/users");
  CHECK(config.spool_directory == "var/spool");
  CHECK(config.maildir_root == "var/mail");
  CHECK(config.tls.certificate.empty());
  CHECK(config.tls.generated_directory == "var/tls");
  // The sample documents the defaults, so it must agree with them.
  CHECK(config.limits.max_message_size == defaults::max_message_size);
  CHECK(config.timeouts.idle == defaults::idle_timeout);
  CHECK(config.timeouts.data == defaults::data_timeout);
  CHECK(config.log_level == defaults::log_level);
}

TEST_CASE("a complete configuration loads with every field") {
  TemporaryDirectory certificates;
  const fs::path certificate = certificates.path() / "cert.pem";
  const fs::path key = certificates.path() / "key.pem";
  write_whole_file(certificate, "certificate");
  write_whole_file(key, "key");

  const LoadedText loaded(
      "hostname: mx.example.test\n"
      "local_domains: [Example.TEST, other.test]\n"
      "users_file: /srv/users\n"
      "spool_directory: /srv/spool\n"
      "maildir_root: /srv/mail\n"
      "listeners:\n"
      "  - {role: mx, address: 0.0.0.0, port: 25, tls: starttls}\n"
      "  - {role: submission, address: '::', port: 587, tls: none}\n"
      "  - {role: submission, address: 127.0.0.1, port: 465, tls: implicit}\n"
      "tls:\n"
      "  certificate: " +
      certificate.string() +
      "\n"
      "  private_key: " +
      key.string() +
      "\n"
      "  generated_directory: /srv/tls\n"
      "limits: {max_message_size: 10M, max_line_length: 2000, max_recipients: 50,\n"
      "         max_connections: 300, max_connections_per_ip: 7, error_limit: 4,\n"
      "         max_auth_failures: 2}\n"
      "timeouts: {idle: 1m, command: 2m, data: 3m, tls_handshake: 10s,\n"
      "           auth_failure_base_delay: 500ms, auth_failure_max_delay: 4s}\n"
      "normalise_bare_line_endings: true\n"
      "nul_octets: strip\n"
      "worker_threads: 8\n"
      "log_level: debug\n"
      "log_file: /var/log/stokend.log\n");
  INFO(all_errors(loaded.result));
  REQUIRE(loaded.result.errors.empty());
  REQUIRE(loaded.result.config);
  const Config& config = *loaded.result.config;
  CHECK(config.source_file == loaded.file);
  CHECK(config.hostname == "mx.example.test");
  CHECK(config.local_domains == std::vector<std::string>{"example.test", "other.test"});
  CHECK(config.users_file == "/srv/users");
  CHECK(config.spool_directory == "/srv/spool");
  CHECK(config.maildir_root == "/srv/mail");
  REQUIRE(config.listeners.size() == 3);
  CHECK(config.listeners[0].address == "0.0.0.0");
  CHECK(config.listeners[0].port == 25);
  CHECK(config.listeners[1].address == "::");
  CHECK(config.listeners[1].tls == TlsMode::none);
  CHECK(config.listeners[2].tls == TlsMode::implicit);
  CHECK(config.tls.certificate == certificate);
  CHECK(config.tls.private_key == key);
  CHECK(config.tls.generated_directory == "/srv/tls");
  CHECK(config.limits.max_message_size == 10 * 1024 * 1024);
  CHECK(config.limits.max_line_length == 2000);
  CHECK(config.limits.max_recipients == 50);
  CHECK(config.limits.max_connections == 300);
  CHECK(config.limits.max_connections_per_ip == 7);
  CHECK(config.limits.error_limit == 4);
  CHECK(config.limits.max_auth_failures == 2);
  CHECK(config.timeouts.idle == 60s);
  CHECK(config.timeouts.command == 120s);
  CHECK(config.timeouts.data == 180s);
  CHECK(config.timeouts.tls_handshake == 10s);
  CHECK(config.timeouts.auth_failure_base_delay == 500ms);
  CHECK(config.timeouts.auth_failure_max_delay == 4s);
  CHECK(config.normalise_bare_line_endings);
  CHECK(config.nul_octets == NulOctets::strip);
  CHECK(config.worker_threads == 8);
  CHECK(config.log_level == "debug");
  CHECK(config.log_file == "/var/log/stokend.log");
}

TEST_CASE("absent keys take the defaults") {
  const LoadedText loaded(minimal_config);
  REQUIRE(loaded.result.errors.empty());
  REQUIRE(loaded.result.config);
  const Config& config = *loaded.result.config;

  std::array<char, 256> system_name{};
  REQUIRE(::gethostname(system_name.data(), system_name.size() - 1) == 0);
  CHECK(config.hostname == system_name.data());
  CHECK(config.users_file == defaults::users_file);
  CHECK(config.spool_directory == defaults::spool_directory);
  CHECK(config.maildir_root == defaults::maildir_root);
  REQUIRE(config.listeners.size() == 1);
  CHECK(config.listeners[0].address == "127.0.0.1");
  CHECK(config.listeners[0].tls == TlsMode::starttls);
  CHECK(config.tls.certificate.empty());
  CHECK(config.tls.private_key.empty());
  CHECK(config.tls.generated_directory == defaults::generated_tls_directory);
  CHECK(config.limits.max_message_size == defaults::max_message_size);
  CHECK(config.limits.max_line_length == defaults::max_line_length);
  CHECK(config.limits.max_recipients == defaults::max_recipients);
  CHECK(config.limits.max_connections == defaults::max_connections);
  CHECK(config.limits.max_connections_per_ip == defaults::max_connections_per_ip);
  CHECK(config.limits.error_limit == defaults::error_limit);
  CHECK(config.limits.max_auth_failures == defaults::max_auth_failures);
  CHECK(config.timeouts.idle == defaults::idle_timeout);
  CHECK(config.timeouts.command == defaults::command_timeout);
  CHECK(config.timeouts.data == defaults::data_timeout);
  CHECK(config.timeouts.tls_handshake == defaults::tls_handshake_timeout);
  CHECK(config.timeouts.auth_failure_base_delay == defaults::auth_failure_base_delay);
  CHECK(config.timeouts.auth_failure_max_delay == defaults::auth_failure_max_delay);
  CHECK(config.normalise_bare_line_endings == defaults::normalise_bare_line_endings);
  CHECK(config.nul_octets == defaults::nul_octets);
  CHECK(config.nul_octets == NulOctets::reject);
  CHECK(config.worker_threads == defaults::worker_threads);
  CHECK(config.log_level == defaults::log_level);
  CHECK(config.log_file.empty());
}

TEST_CASE("empty sections keep their defaults") {
  const LoadedText loaded(minimal_config + "limits:\ntimeouts:\ntls:\nlog_file:\n");
  REQUIRE(loaded.result.errors.empty());
  CHECK(loaded.result.config->limits.max_recipients == defaults::max_recipients);
  CHECK(loaded.result.config->log_file.empty());
}

TEST_CASE("durations parse as seconds or with a unit") {
  const auto [text, expected] = GENERATE(table<std::string, std::chrono::milliseconds>({
      {"45", 45s},
      {"500ms", 500ms},
      {"30s", 30s},
      {"5m", 5min},
      {"2h", 2h},
      {"1d", 24h},
  }));
  const LoadedText loaded(minimal_config + "timeouts: {idle: " + text + "}\n");
  REQUIRE(loaded.result.errors.empty());
  CHECK(loaded.result.config->timeouts.idle == expected);
}

TEST_CASE("auth failure delays may be zero, deadlines may not") {
  const LoadedText zero_delay(minimal_config + "timeouts: {auth_failure_base_delay: 0}\n");
  REQUIRE(zero_delay.result.errors.empty());
  CHECK(zero_delay.result.config->timeouts.auth_failure_base_delay == 0ms);

  const LoadedText zero_deadline(minimal_config + "timeouts: {data: 0s}\n");
  CHECK(zero_deadline.only_error() ==
        "4:18: timeouts.data: expected a duration (seconds, or a number with ms, s, m, h or d, "
        "e.g. 30s) greater than zero, got '0s'");
}

TEST_CASE("sizes parse as bytes or with K, M or G") {
  const auto [text, expected] = GENERATE(table<std::string, std::size_t>({
      {"1000", 1000},
      {"64K", 64 * 1024},
      {"35M", 35 * 1024 * 1024},
      {"2G", std::size_t{2} * 1024 * 1024 * 1024},
      {"3m", 3 * 1024 * 1024},
  }));
  const LoadedText loaded(minimal_config + "limits: {max_message_size: " + text + "}\n");
  REQUIRE(loaded.result.errors.empty());
  CHECK(loaded.result.config->limits.max_message_size == expected);
}

TEST_CASE("each kind of error is reported at its place") {
  // Every case appends to the minimal config (3 lines), so line 4 is the
  // first line of the case's own text.
  const auto [text, expected] = GENERATE(table<std::string, std::string>({
      {"limits: {max_recipients: abc}\n",
       "4:26: limits.max_recipients: expected a positive integer, got 'abc'"},
      {"limits:\n  max_connections: -5\n",
       "5:20: limits.max_connections: expected a positive integer, got '-5'"},
      {"limits: {max_recipients: [1]}\n",
       "4:26: limits.max_recipients: expected a positive integer, got a list"},
      {"limits: {max_message_size: 35X}\n",
       "4:28: limits.max_message_size: expected a size in bytes (a number, optionally with K, M "
       "or G), got '35X'"},
      {"timeouts: {idle: 5 minutes}\n",
       "4:18: timeouts.idle: expected a duration (seconds, or a number with ms, s, m, h or d, "
       "e.g. 30s) greater than zero, got '5 minutes'"},
      {"foo: 1\n", "4:1: unknown key 'foo'"},
      {"limits: {foo: 1}\n", "4:10: unknown key 'foo' in limits"},
      {"limits: {max_recipient: 1}\n",
       "4:10: unknown key 'max_recipient' in limits (did you mean 'max_recipients'?)"},
      {"worker_threads: 2\nworker_threads: 3\n", "5:1: duplicate key 'worker_threads'"},
      {"normalise_bare_line_endings: maybe\n",
       "4:30: normalise_bare_line_endings: expected true or false, got 'maybe'"},
      {"nul_octets: keep\n", "4:13: nul_octets: unknown value 'keep' (expected reject or strip)"},
      {"nul_octets: [strip]\n", "4:13: nul_octets: expected a string, got a list"},
      {"log_level: loud\n",
       "4:12: log_level: unknown level 'loud' (expected one of trace, debug, info, warn, error, "
       "critical, off)"},
      {"hostname: 'mx example'\n", "4:11: hostname: 'mx example' is not a valid host name"},
      {"users_file: ''\n", "4:13: users_file: must not be empty"},
      {"worker_threads: 5000\n", "4:17: worker_threads: at most 1024, got 5000"},
      {"timeouts: {auth_failure_base_delay: 20s}\n",
       "4:37: timeouts: auth_failure_max_delay (16s) must not be shorter than "
       "auth_failure_base_delay (20s)"},
      {"limits: 7\n", "4:9: limits: expected a map of settings, got '7'"},
  }));
  INFO(text);
  const LoadedText loaded(minimal_config + text);
  CHECK_FALSE(loaded.result.config);
  CHECK(loaded.only_error() == expected);
}

TEST_CASE("listener errors are reported at their place") {
  const auto [listener, expected] = GENERATE(table<std::string, std::string>({
      {"{role: mx, port: 0}", "4:22: listeners[1].port: expected a port number 1-65535, got '0'"},
      {"{role: mx, port: 65536}",
       "4:22: listeners[1].port: expected a port number 1-65535, got '65536'"},
      {"{role: mx, port: smtp}",
       "4:22: listeners[1].port: expected a port number 1-65535, got 'smtp'"},
      {"{role: mx, port: 25, address: 256.0.0.1}",
       "4:35: listeners[1].address: '256.0.0.1' is not an IPv4 or IPv6 address"},
      {"{role: mx, port: 25, address: localhost}",
       "4:35: listeners[1].address: 'localhost' is not an IPv4 or IPv6 address"},
      {"{role: relay, port: 25}",
       "4:12: listeners[1].role: unknown role 'relay' (expected mx or submission)"},
      {"{role: mx, port: 25, tls: ssl}",
       "4:31: listeners[1].tls: unknown tls mode 'ssl' (expected none, starttls or implicit)"},
      {"{role: mx, port: 25, colour: red}", "4:26: unknown key 'colour' in listeners[1]"},
      {"{role: mx}", "4:5: missing required key 'port' in listeners[1]"},
      {"{role: submission, port: 2525}",
       "4:5: listeners[1]: duplicate listener 127.0.0.1:2525 (already defined at line 3)"},
  }));
  INFO(listener);
  const LoadedText loaded(minimal_config + "  - " + listener + "\n");
  CHECK(loaded.only_error() == expected);
}

TEST_CASE("the same IPv6 address spelt two ways is a duplicate listener") {
  const LoadedText loaded(
      "local_domains: [example.test]\n"
      "listeners:\n"
      "  - {role: mx, address: '::1', port: 25}\n"
      "  - {role: mx, address: '0:0::1', port: 25}\n");
  CHECK(loaded.only_error() ==
        "4:5: listeners[1]: duplicate listener [::1]:25 (already defined at line 3)");
}

TEST_CASE("required keys must be present and not empty") {
  SECTION("both missing") {
    const LoadedText loaded("hostname: mx.example.test\n");
    CHECK(loaded.errors() ==
          std::vector<std::string>{
              loaded.file.string() + ":1:1: missing required key 'local_domains'",
              loaded.file.string() + ":1:1: missing required key 'listeners'"});
  }
  SECTION("an empty file") {
    const LoadedText loaded("");
    CHECK(loaded.result.errors.size() == 2);
  }
  SECTION("empty lists") {
    const LoadedText loaded("local_domains: []\nlisteners: []\n");
    CHECK(loaded.errors() ==
          std::vector<std::string>{
              loaded.file.string() + ":1:16: local_domains: at least one local domain is required",
              loaded.file.string() + ":2:12: listeners: at least one listener is required"});
  }
  SECTION("a listener without a list") {
    const LoadedText loaded("local_domains: [example.test]\nlisteners: {role: mx}\n");
    CHECK(loaded.only_error() == "2:12: listeners: expected a list of listeners, got a map");
  }
  SECTION("an invalid local domain") {
    const LoadedText loaded("local_domains: ['bad domain']\nlisteners: [{role: mx, port: 25}]\n");
    CHECK(loaded.only_error() == "1:17: local_domains[0]: 'bad domain' is not a valid domain name");
  }
}

TEST_CASE("certificate and key must be readable and given together") {
  TemporaryDirectory certificates;
  const fs::path certificate = certificates.path() / "cert.pem";
  write_whole_file(certificate, "certificate");
  const fs::path missing = certificates.path() / "missing.pem";

  SECTION("an unreadable key") {
    const LoadedText loaded(minimal_config + "tls:\n  certificate: " + certificate.string() +
                            "\n  private_key: " + missing.string() + "\n");
    CHECK(loaded.only_error() == "6:16: tls.private_key: cannot read '" + missing.string() +
                                     "': No such file or directory");
  }
  SECTION("a certificate without its key") {
    const LoadedText loaded(minimal_config + "tls:\n  certificate: " + certificate.string() + "\n");
    CHECK(loaded.only_error() ==
          "5:16: tls: certificate and private_key must be given together (private_key is "
          "missing)");
  }
}

TEST_CASE("several errors are reported at once, in file order") {
  const LoadedText loaded(
      "local_domains: [example.test]\n"
      "listeners:\n"
      "  - {role: mx, port: 99999}\n"
      "limits: {max_recipients: abc, max_connections: 0}\n"
      "log_level: chatty\n"
      "bogus: true\n");
  const std::string file = loaded.file.string();
  CHECK_FALSE(loaded.result.config);
  CHECK(loaded.errors() ==
        std::vector<std::string>{
            file + ":3:22: listeners[0].port: expected a port number 1-65535, got '99999'",
            file + ":4:26: limits.max_recipients: expected a positive integer, got 'abc'",
            file + ":4:48: limits.max_connections: expected a positive integer, got '0'",
            file + ":5:12: log_level: unknown level 'chatty' (expected one of trace, debug, info, "
                   "warn, error, critical, off)",
            file + ":6:1: unknown key 'bogus'",
        });
}

TEST_CASE("a YAML syntax error is reported with its position") {
  const LoadedText loaded("local_domains: [example.test\nlisteners: []\n");
  REQUIRE(loaded.result.errors.size() == 1);
  CHECK(loaded.result.errors[0].line > 0);
  CHECK(loaded.result.errors[0].column > 0);
  CHECK(loaded.result.errors[0].message.starts_with("YAML syntax error: "));
}

TEST_CASE("a missing configuration file is an error without a position") {
  TemporaryDirectory directory;
  const fs::path missing = directory.path() / "absent.yaml";
  const ConfigLoadResult result = load_config(missing);
  CHECK_FALSE(result.config);
  REQUIRE(result.errors.size() == 1);
  CHECK(result.errors[0].to_string() ==
        missing.string() + ": cannot read the configuration: No such file or directory");
}

TEST_CASE("ConfigError::to_string leaves out what it does not know") {
  CHECK(ConfigError{"a.yaml", 3, 7, "bad"}.to_string() == "a.yaml:3:7: bad");
  CHECK(ConfigError{"a.yaml", 3, 0, "bad"}.to_string() == "a.yaml:3: bad");
  CHECK(ConfigError{"a.yaml", 0, 0, "bad"}.to_string() == "a.yaml: bad");
}

TEST_CASE("local domains match case-insensitively") {
  Config config;
  config.local_domains = {"example.test"};
  CHECK(config.is_local_domain("example.test"));
  CHECK(config.is_local_domain("EXAMPLE.Test"));
  CHECK_FALSE(config.is_local_domain("example.org"));
  CHECK_FALSE(config.is_local_domain("sub.example.test"));
}

TEST_CASE("queue, dns and routes sections load") {
  const LoadedText loaded(minimal_config +
                          "queue: {first_retry: 1s, max_retry_interval: 4s, lifetime: 1m,\n"
                          "        delay_warning_after: 0, max_concurrent_deliveries: 7}\n"
                          "dns: {servers: \"127.0.0.1:5353\", timeout: 500ms}\n"
                          "routes:\n"
                          "  example.test: \"lmtp:[127.0.0.1]:2424\"\n"
                          "  B.Test: \"smtp:[127.0.0.1]:2600\"\n"
                          "  \"*\": mx\n");
  INFO(all_errors(loaded.result));
  REQUIRE(loaded.result.config);
  const Config& config = *loaded.result.config;
  CHECK(config.queue.first_retry == std::chrono::seconds(1));
  CHECK(config.queue.max_retry_interval == std::chrono::seconds(4));
  CHECK(config.queue.lifetime == std::chrono::minutes(1));
  CHECK(config.queue.delay_warning_after == std::chrono::milliseconds(0));
  CHECK(config.queue.max_concurrent_deliveries == 7);
  CHECK(config.dns.servers == "127.0.0.1:5353");
  CHECK(config.dns.timeout == std::chrono::milliseconds(500));
  REQUIRE(config.routes.size() == 3);
  CHECK(config.routes.at("example.test").next_hop.port == 2424);
  CHECK(config.routes.at("b.test").transport == stokend::Route::Transport::smtp);
  CHECK(config.routes.at("*").transport == stokend::Route::Transport::mx);
}

TEST_CASE("a bad route is reported at its value") {
  const LoadedText loaded(minimal_config + "routes:\n  b.test: \"smtp:[mx.b.test]:25\"\n");
  CHECK(loaded.only_error() ==
        "5:11: routes.b.test: 'mx.b.test' is not an IP address (routes use IP literals, no DNS)");
}

TEST_CASE("a retry interval shorter than the first retry is refused") {
  const LoadedText loaded(minimal_config + "queue: {first_retry: 10m, max_retry_interval: 5m}\n");
  CHECK_THAT(
      loaded.only_error(),
      Catch::Contains("max_retry_interval (300s) must not be shorter than first_retry (600s)"));
}

TEST_CASE("the tokens section defaults to files in the spool and the draft's lifetimes",
          "[config][tokens]") {
  const LoadedText loaded(minimal_config + "spool_directory: /srv/spool\n");
  INFO(all_errors(loaded.result));
  REQUIRE(loaded.result.config);
  const TokenConfig& tokens = loaded.result.config->tokens;
  CHECK(tokens.store == "/srv/spool/tokens.db");
  CHECK(tokens.secrets_file == "/srv/spool/token-secrets");
  CHECK(tokens.temporary_validity == defaults::token_temporary_validity);
  CHECK(tokens.temporary_validity == std::chrono::hours(24 * 7));
  CHECK(tokens.permanent_validity == std::chrono::hours(24 * 365));
  CHECK(tokens.clock_skew == std::chrono::hours(24));
  CHECK(tokens.renew_before == std::chrono::hours(24 * 30));
  CHECK(tokens.sync_contacts_folder);

  // Empty paths mean the defaults too, wherever spool_directory is set.
  const LoadedText empty(minimal_config + "tokens: {store: '', secrets_file: ''}\n" +
                         "spool_directory: /late/spool\n");
  REQUIRE(empty.result.config);
  CHECK(empty.result.config->tokens.store == "/late/spool/tokens.db");
  CHECK(empty.result.config->tokens.secrets_file == "/late/spool/token-secrets");
}

TEST_CASE("the tokens section loads every key", "[config][tokens]") {
  const LoadedText loaded(minimal_config +
                          "tokens:\n"
                          "  store: /srv/tokens.db\n"
                          "  secrets_file: /etc/stokend/secrets\n"
                          "  temporary_validity: 2d\n"
                          "  permanent_validity: 90d\n"
                          "  clock_skew: 0\n"
                          "  renew_before: 3600\n"
                          "  sync_contacts_folder: false\n");
  INFO(all_errors(loaded.result));
  REQUIRE(loaded.result.config);
  const TokenConfig& tokens = loaded.result.config->tokens;
  CHECK_FALSE(tokens.sync_contacts_folder);
  CHECK(tokens.store == "/srv/tokens.db");
  CHECK(tokens.secrets_file == "/etc/stokend/secrets");
  CHECK(tokens.temporary_validity == std::chrono::hours(48));
  CHECK(tokens.permanent_validity == std::chrono::hours(24 * 90));
  CHECK(tokens.clock_skew == std::chrono::seconds(0));
  CHECK(tokens.renew_before == std::chrono::hours(1));
}

TEST_CASE("bad tokens settings are reported at their place", "[config][tokens]") {
  // The minimal config has 3 lines, so line 4 is "tokens:", line 5 the key.
  const auto [text, expected] = GENERATE(table<std::string, std::string>({
      {"tokens:\n  temporary_validity: 0\n",
       "5:23: tokens.temporary_validity: expected a duration (seconds, or a number with ms, s, m, "
       "h or d, e.g. 30s) greater than zero, got '0'"},
      {"tokens:\n  permanent_validity: 0s\n",
       "5:23: tokens.permanent_validity: expected a duration (seconds, or a number with ms, s, m, "
       "h or d, e.g. 30s) greater than zero, got '0s'"},
      {"tokens:\n  clock_skew: 1500ms\n",
       "5:15: tokens.clock_skew: must be whole seconds, got '1500ms'"},
      {"tokens:\n  renew_before: 365d\n",
       "5:17: tokens: renew_before (31536000s) must be shorter than permanent_validity "
       "(31536000s)"},
      {"tokens:\n  permanent_validity: 10d\n",
       "5:23: tokens: renew_before (2592000s) must be shorter than permanent_validity (864000s)"},
      {"tokens:\n  validity: 1d\n", "5:3: unknown key 'validity' in tokens"},
      {"tokens:\n  stor: x\n", "5:3: unknown key 'stor' in tokens (did you mean 'store'?)"},
      {"tokens:\n  store: [a, b]\n", "5:10: tokens.store: expected a string, got a list"},
      {"tokens: 7d\n", "4:9: tokens: expected a map of settings, got '7d'"},
      {"tokens:\n  sync_contacts_folder: maybe\n",
       "5:25: tokens.sync_contacts_folder: expected true or false, got 'maybe'"},
  }));
  const LoadedText loaded(minimal_config + text);
  CHECK(loaded.only_error() == expected);
}

TEST_CASE("tls_policies and the verify CA file load", "[config][tls_policy]") {
  TemporaryDirectory directory;
  const fs::path ca_file = directory.path() / "ca.pem";
  write_whole_file(ca_file, "not parsed at load time\n");
  const LoadedText loaded(minimal_config +
                          "tls_policies:\n"
                          "  bank.example: require\n"
                          "  Partner.Example: verify\n"
                          "  \"*\": may\n"
                          "delivery: {tls_policy_ca_file: \"" +
                          ca_file.string() + "\"}\n");
  INFO(all_errors(loaded.result));
  REQUIRE(loaded.result.config);
  const Config& config = *loaded.result.config;
  REQUIRE(config.tls_policies.size() == 3);
  CHECK(config.tls_policies.at("bank.example") == TlsPolicyLevel::require);
  CHECK(config.tls_policies.at("partner.example") == TlsPolicyLevel::verify);
  CHECK(config.tls_policies.at("*") == TlsPolicyLevel::may);
  CHECK(config.delivery.tls_policy_ca_file == ca_file);
}

TEST_CASE("without tls_policies every domain is opportunistic", "[config][tls_policy]") {
  const LoadedText loaded(minimal_config);
  REQUIRE(loaded.result.config);
  CHECK(loaded.result.config->tls_policies.empty());
  CHECK(loaded.result.config->delivery.tls_policy_ca_file.empty());
  CHECK(TlsPolicyTable(loaded.result.config->tls_policies).policy_for("any.example") ==
        TlsPolicyLevel::may);
  const LoadedText empty(minimal_config + "tls_policies:\n");
  REQUIRE(empty.result.config);
  CHECK(empty.result.config->tls_policies.empty());
}

TEST_CASE("bad tls_policies settings are reported at their place", "[config][tls_policy]") {
  // The minimal config has 3 lines, so line 4 is the section, line 5 the key.
  const auto [text, expected] = GENERATE(table<std::string, std::string>({
      {"tls_policies:\n  bank.example: encrypt\n",
       "5:17: tls_policies.bank.example: unknown policy 'encrypt' (expected may, require or "
       "verify)"},
      {"tls_policies:\n  bank.example: [require]\n",
       "5:17: tls_policies.bank.example: expected a string, got a list"},
      {"tls_policies:\n  \"bank..example\": require\n",
       "5:3: tls_policies: 'bank..example' is not a domain name or '*'"},
      {"tls_policies:\n  a.example: require\n  A.example: verify\n",
       "6:3: tls_policies: duplicate policy for 'a.example'"},
      {"tls_policies: require\n",
       "4:15: tls_policies: expected a map of domain: policy, got 'require'"},
      {"delivery:\n  tls_policy_ca_file: /nonexistent/ca.pem\n",
       "5:23: delivery.tls_policy_ca_file: cannot read '/nonexistent/ca.pem': No such file or "
       "directory"},
  }));
  const LoadedText loaded(minimal_config + text);
  CHECK(loaded.only_error() == expected);
}

TEST_CASE("the queue tuning keys load, the ends of their ranges included", "[config][queue]") {
  struct Case {
    std::string text;
    double backoff_factor;
    double jitter;
    std::size_t segment_size;
    double compaction_threshold;
  };
  const Case sample = GENERATE(values<Case>({
      {"queue:\n  backoff_factor: 1.5\n  jitter: 0\n  segment_size: 64M\n"
       "  compaction_threshold: 0.5\n",
       1.5, 0.0, std::size_t{64} << 20, 0.5},
      {"queue: {backoff_factor: 1, jitter: 1, segment_size: 1G, compaction_threshold: 0}\n", 1.0,
       1.0, std::size_t{1} << 30, 0.0},
      {"queue: {backoff_factor: 10, jitter: .05, segment_size: 1M, compaction_threshold: 0.99}\n",
       10.0, 0.05, std::size_t{1} << 20, 0.99},
  }));
  const LoadedText loaded(minimal_config + sample.text);
  INFO(all_errors(loaded.result));
  REQUIRE(loaded.result.config);
  const QueueConfig& settings = loaded.result.config->queue;
  CHECK(settings.backoff_factor == sample.backoff_factor);
  CHECK(settings.jitter == sample.jitter);
  CHECK(settings.segment_size == sample.segment_size);
  CHECK(settings.compaction_threshold == sample.compaction_threshold);
}

TEST_CASE("the queue tuning keys default to the queue's own defaults", "[config][queue]") {
  const LoadedText loaded(minimal_config);
  REQUIRE(loaded.result.config);
  const QueueConfig& settings = loaded.result.config->queue;
  CHECK(settings.backoff_factor == queue::defaults::backoff_factor);
  CHECK(settings.jitter == queue::defaults::retry_jitter);
  CHECK(settings.segment_size == queue::defaults::segment_size);
  CHECK(settings.compaction_threshold == queue::defaults::compaction_threshold);
  // The values etc/stokend.yaml documents.
  CHECK(settings.backoff_factor == 2.0);
  CHECK(settings.jitter == 0.2);
  CHECK(settings.segment_size == 16u * 1024 * 1024);
  CHECK(settings.compaction_threshold == 0.25);
}

TEST_CASE("bad queue tuning values are reported at their place", "[config][queue]") {
  // The minimal config has 3 lines, so line 4 is "queue:", line 5 the key.
  const auto [text, expected] = GENERATE(table<std::string, std::string>({
      {"queue:\n  backoff_factor: 0.5\n",
       "5:19: queue.backoff_factor: expected a number of at least 1 (e.g. 2 or 1.5), got '0.5'"},
      {"queue:\n  backoff_factor: two\n",
       "5:19: queue.backoff_factor: expected a number of at least 1 (e.g. 2 or 1.5), got 'two'"},
      {"queue:\n  backoff_factor: 2e3\n",
       "5:19: queue.backoff_factor: expected a number of at least 1 (e.g. 2 or 1.5), got '2e3'"},
      {"queue:\n  backoff_factor: inf\n",
       "5:19: queue.backoff_factor: expected a number of at least 1 (e.g. 2 or 1.5), got 'inf'"},
      {"queue:\n  backoff_factor: [2]\n",
       "5:19: queue.backoff_factor: expected a number of at least 1 (e.g. 2 or 1.5), got a list"},
      {"queue:\n  jitter: 1.5\n",
       "5:11: queue.jitter: expected a number from 0 to 1 (e.g. 0.2), got '1.5'"},
      {"queue:\n  jitter: -0.1\n",
       "5:11: queue.jitter: expected a number from 0 to 1 (e.g. 0.2), got '-0.1'"},
      {"queue:\n  jitter: nan\n",
       "5:11: queue.jitter: expected a number from 0 to 1 (e.g. 0.2), got 'nan'"},
      {"queue:\n  jitter: 20%\n",
       "5:11: queue.jitter: expected a number from 0 to 1 (e.g. 0.2), got '20%'"},
      {"queue:\n  segment_size: 512K\n",
       "5:17: queue.segment_size: must be from 1M to 1G, got '512K'"},
      {"queue:\n  segment_size: 2G\n", "5:17: queue.segment_size: must be from 1M to 1G, got '2G'"},
      {"queue:\n  segment_size: 16T\n",
       "5:17: queue.segment_size: expected a size in bytes (a number, optionally with K, M or G), "
       "got '16T'"},
      {"queue:\n  compaction_threshold: 1\n",
       "5:25: queue.compaction_threshold: expected a number from 0 up to, not including, 1 (e.g. "
       "0.25), got '1'"},
      {"queue:\n  compaction_threshold: -1\n",
       "5:25: queue.compaction_threshold: expected a number from 0 up to, not including, 1 (e.g. "
       "0.25), got '-1'"},
      {"queue:\n  jiter: 0.1\n", "5:3: unknown key 'jiter' in queue (did you mean 'jitter'?)"},
  }));
  const LoadedText loaded(minimal_config + text);
  CHECK(loaded.only_error() == expected);
}

TEST_CASE("queue.min_free_space: a size, 0 for none, by default 1.5 x the largest message",
          "[config][queue]") {
  const auto [text, expected] = GENERATE(table<std::string, std::size_t>({
      // The default: 1.5 x 35M, over the 16M floor.
      {"", std::size_t{35} * 1024 * 1024 * 3 / 2},
      {"limits:\n  max_message_size: 100M\n", std::size_t{150} << 20},
      // A small largest message: the floor.
      {"limits:\n  max_message_size: 1M\n", std::size_t{16} << 20},
      // Whichever section comes first.
      {"queue:\n  jitter: 0.1\nlimits:\n  max_message_size: 20M\n", std::size_t{30} << 20},
      {"queue:\n  min_free_space: 200M\n", std::size_t{200} << 20},
      {"queue:\n  min_free_space: 64K\nlimits:\n  max_message_size: 100M\n", std::size_t{64} << 10},
      {"queue:\n  min_free_space: 0\n", std::size_t{0}},
  }));
  const LoadedText loaded(minimal_config + text);
  INFO(text << all_errors(loaded.result));
  REQUIRE(loaded.result.config);
  REQUIRE(loaded.result.config->queue.min_free_space.has_value());
  CHECK(*loaded.result.config->queue.min_free_space == expected);
  CHECK(queue::defaults::min_free_space(1) == queue::defaults::min_free_space_floor);
}

TEST_CASE("a bad queue.min_free_space is reported at its place", "[config][queue]") {
  const auto [text, expected] = GENERATE(table<std::string, std::string>({
      {"queue:\n  min_free_space: lots\n",
       "5:19: queue.min_free_space: expected a size in bytes (a number, optionally with K, M or "
       "G), got 'lots'"},
      {"queue:\n  min_free_space: -1M\n",
       "5:19: queue.min_free_space: expected a size in bytes (a number, optionally with K, M or "
       "G), got '-1M'"},
      {"queue:\n  min_free_space: [1M]\n",
       "5:19: queue.min_free_space: expected a size in bytes (a number, optionally with K, M or "
       "G), got a list"},
  }));
  const LoadedText loaded(minimal_config + text);
  CHECK(loaded.only_error() == expected);
}

TEST_CASE("the fast_lane section loads, and has working defaults", "[config][fast_lane]") {
  const LoadedText defaults(minimal_config);
  REQUIRE(defaults.result.config);
  const FastLaneConfig& standard = defaults.result.config->fast_lane;
  CHECK(standard.enabled);
  CHECK(standard.ca_file.empty());
  CHECK_FALSE(standard.mx_fallback);
  CHECK(standard.mx_fallback_port == 465);
  CHECK(standard.distribute_tokens == TokenDistribution::chat);

  TemporaryDirectory directory;
  const fs::path ca_file = directory.path() / "ca.pem";
  write_whole_file(ca_file, "not parsed at load time\n");
  const LoadedText loaded(minimal_config + "fast_lane:\n  enabled: false\n  ca_file: \"" +
                          ca_file.string() +
                          "\"\n  mx_fallback: true\n  mx_fallback_port: 10465\n"
                          "  timeout: 2s\n  idle_timeout: 1m\n  distribute_tokens: all\n");
  INFO(all_errors(loaded.result));
  REQUIRE(loaded.result.config);
  const FastLaneConfig& set = loaded.result.config->fast_lane;
  CHECK_FALSE(set.enabled);
  CHECK(set.ca_file == ca_file);
  CHECK(set.mx_fallback);
  CHECK(set.mx_fallback_port == 10465);
  CHECK(set.timeout == std::chrono::seconds(2));
  CHECK(set.idle_timeout == std::chrono::minutes(1));
  CHECK(set.distribute_tokens == TokenDistribution::all);
}

TEST_CASE("bad fast_lane settings are reported at their place", "[config][fast_lane]") {
  const auto [text, expected] = GENERATE(table<std::string, std::string>({
      {"fast_lane:\n  distribute_tokens: chats\n",
       "5:22: fast_lane.distribute_tokens: unknown value 'chats' (expected chat, all or off)"},
      {"fast_lane:\n  mx_fallback_port: 70000\n",
       "5:21: fast_lane.mx_fallback_port: port must be 1-65535, got 70000"},
      {"fast_lane:\n  ca_file: /nonexistent/ca.pem\n",
       "5:12: fast_lane.ca_file: cannot read '/nonexistent/ca.pem': No such file or directory"},
      {"fast_lane:\n  timeout: 0\n",
       "5:12: fast_lane.timeout: expected a duration (seconds, or a number with ms, s, m, h or d, "
       "e.g. 30s) greater than zero, got '0'"},
      {"fast_lane:\n  speed: high\n", "5:3: unknown key 'speed' in fast_lane"},
  }));
  const LoadedText loaded(minimal_config + text);
  CHECK(loaded.only_error() == expected);
}

TEST_CASE("recipient_probe names local domains with a next hop", "[config][recipient_probe]") {
  const LoadedText loaded(minimal_config +
                          "routes: {example.test: \"smtp:[127.0.0.1]:2526\"}\n"
                          "recipient_probe:\n  domains: [Example.TEST]\n"
                          "  positive_ttl: 2h\n  negative_ttl: 5m\n");
  INFO(all_errors(loaded.result));
  REQUIRE(loaded.result.config);
  const RecipientProbeConfig& probe = loaded.result.config->recipient_probe;
  CHECK(probe.domains == std::vector<std::string>{"example.test"});
  CHECK(probe.probes("EXAMPLE.test"));
  CHECK_FALSE(probe.probes("other.test"));
  CHECK(probe.positive_ttl == std::chrono::hours(2));
  CHECK(probe.negative_ttl == std::chrono::minutes(5));

  const LoadedText none(minimal_config);
  REQUIRE(none.result.config);
  CHECK(none.result.config->recipient_probe.domains.empty());
}

TEST_CASE("a recipient_probe domain without a next hop is refused", "[config][recipient_probe]") {
  const LoadedText loaded(minimal_config + "recipient_probe:\n  domains: [example.test]\n");
  CHECK(loaded.only_error() ==
        "5:13: recipient_probe.domains[0]: 'example.test' has no smtp or lmtp route, so there "
        "is no next hop to ask");
}

TEST_CASE("delay_warning_time, or its older name delay_warning_after, given once") {
  {
    const LoadedText loaded(minimal_config + "queue: {delay_warning_time: 30m}\n");
    INFO(all_errors(loaded.result));
    REQUIRE(loaded.result.config);
    CHECK(loaded.result.config->queue.delay_warning_after == std::chrono::minutes(30));
  }
  {
    const LoadedText loaded(minimal_config + "queue: {delay_warning_after: 0}\n");
    REQUIRE(loaded.result.config);
    CHECK(loaded.result.config->queue.delay_warning_after == std::chrono::milliseconds(0));
  }
  {
    const LoadedText loaded(minimal_config +
                            "queue: {delay_warning_time: 1h, delay_warning_after: 2h}\n");
    CHECK_FALSE(loaded.result.config);
    CHECK(all_errors(loaded.result).find("name the same setting; give one") != std::string::npos);
  }
  {
    const LoadedText loaded(minimal_config + "queue: {delay_warning_time: soon}\n");
    CHECK_FALSE(loaded.result.config);
    CHECK(all_errors(loaded.result).find("delay_warning_time") != std::string::npos);
  }
}
