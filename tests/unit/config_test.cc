// Unit tests for loading stokend.yaml (mta/config/config.h): values, defaults, and
// that every kind of error is reported at the right FILE:LINE:COL. The
// sections of queue, routing, tokens and the fast lane: config_sections_test.cc.
#include "mta/config/config.h"

#include <unistd.h>

#include <array>
#include <catch2/catch.hpp>
#include <chrono>
#include <filesystem>
#include <string>
#include <vector>

#include "tests/unit/config_fixture.h"

using stokend::testing::all_errors;
using stokend::testing::LoadedText;
using stokend::testing::minimal_config;
using stokend::testing::TemporaryDirectory;
using stokend::testing::write_file;

namespace fs = std::filesystem;
using namespace std::chrono_literals;
using namespace stokend;

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
  CHECK(config.log_syslog == defaults::log_syslog);
  CHECK(config.log_syslog_socket == defaults::log_syslog_socket);
}

TEST_CASE("a complete configuration loads with every field") {
  TemporaryDirectory certificates;
  const auto pair = stokend::testing::pem_pair(certificates.path());
  const fs::path& certificate = pair.certificate;
  const fs::path& key = pair.private_key;

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
      "log_file: /var/log/stokend.log\n"
      "log_syslog: true\n"
      "log_syslog_socket: /run/systemd/journal/dev-log\n");
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
  CHECK(config.log_syslog);
  CHECK(config.log_syslog_socket == "/run/systemd/journal/dev-log");
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
      {"log_syslog: yes please\n", "4:13: log_syslog: expected true or false, got 'yes please'"},
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
  const fs::path certificate = stokend::testing::pem_pair(certificates.path()).certificate;
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
  const LoadedText loaded("local_domains: [example.test\nlisteners:\n  - {role: mx,\n");
  REQUIRE(loaded.result.errors.size() == 1);
  CHECK(loaded.result.errors[0].line > 0);
  CHECK(loaded.result.errors[0].column > 0);
  CHECK(loaded.result.errors[0].message.find("YAML syntax error: ") != std::string::npos);
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
