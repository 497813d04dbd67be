// Unit tests for loading the sections of stokend.yaml that tune the queue,
// routing, outbound TLS, tokens, the fast lane and recipient probes
// (mta/config/config.h): values, defaults, and errors at their place. The
// general rules and the other sections: config_test.cc.
#include <catch2/catch.hpp>
#include <chrono>
#include <filesystem>
#include <string>
#include <vector>

#include "mta/config/config.h"
#include "tests/unit/config_fixture.h"

using stokend::testing::all_errors;
using stokend::testing::LoadedText;
using stokend::testing::minimal_config;
using stokend::testing::TemporaryDirectory;
using stokend::testing::write_file;

namespace fs = std::filesystem;
using namespace std::chrono_literals;
using namespace stokend;

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
  const LoadedText loaded(minimal_config + "routes:\n  b.test: \"lmtp:[mx.b.test]:24\"\n");
  CHECK(loaded.only_error() ==
        "5:11: routes.b.test: 'mx.b.test' is not an IP address (lmtp routes use IP literals, no "
        "DNS)");
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
  fs::copy_file(stokend::testing::pem_pair(directory.path() / "ca").certificate, ca_file);
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
  CHECK(standard.dialects.empty());

  TemporaryDirectory directory;
  const fs::path ca_file = directory.path() / "ca.pem";
  fs::copy_file(stokend::testing::pem_pair(directory.path() / "ca").certificate, ca_file);
  const LoadedText loaded(minimal_config + "fast_lane:\n  enabled: false\n  ca_file: \"" +
                          ca_file.string() +
                          "\"\n  mx_fallback: true\n  mx_fallback_port: 10465\n"
                          "  timeout: 2s\n  idle_timeout: 1m\n  distribute_tokens: all\n"
                          "  dialects: {B.Test: ehlo-sync, c.test: lhlo, \"*\": auto}\n");
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
  CHECK(set.dialects ==
        std::map<std::string, TokenDialect, std::less<>>{{"b.test", TokenDialect::ehlo_sync},
                                                         {"c.test", TokenDialect::lhlo},
                                                         {"*", TokenDialect::automatic}});
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
      {"fast_lane:\n  dialects: {b.test: smtp}\n",
       "5:22: fast_lane.dialects.b.test: unknown dialect 'smtp' (expected auto, lhlo or "
       "ehlo-sync)"},
      {"fast_lane:\n  dialects: {b.test: lhlo, B.TEST: auto}\n",
       "5:28: fast_lane.dialects: duplicate dialect for 'b.test'"},
      {"fast_lane:\n  dialects: ehlo-sync\n",
       "5:13: fast_lane.dialects: expected a map of domain: dialect, got 'ehlo-sync'"},
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

TEST_CASE("a listener behind a load balancer names the proxies it trusts") {
  const LoadedText loaded(minimal_config +
                          "  - {role: mx, port: 2526, proxy_protocol: true,\n"
                          "     trusted_proxies: [10.0.0.5, '2001:db8::/32']}\n");
  REQUIRE(loaded.result.config);
  const ListenerConfig& proxied = loaded.result.config->listeners.at(1);
  CHECK(proxied.proxy_protocol);
  REQUIRE(proxied.trusted_proxies.size() == 2);
  CHECK(proxied.trusted_proxies[0].contains("10.0.0.5"));
  CHECK(proxied.trusted_proxies[1].contains("2001:db8:1::1"));
  CHECK_FALSE(loaded.result.config->listeners.at(0).proxy_protocol);

  CHECK(LoadedText(minimal_config + "  - {role: mx, port: 2526, proxy_protocol: true}\n")
            .only_error() ==
        "4:5: listeners[1]: proxy_protocol needs trusted_proxies, the load balancers' addresses "
        "(a PROXY header from anyone else is refused)");
  CHECK(LoadedText(minimal_config + "  - {role: mx, port: 2526, trusted_proxies: [10.0.0.5]}\n")
            .only_error() == "4:5: listeners[1]: trusted_proxies is set but proxy_protocol is not");
  CHECK(LoadedText(minimal_config +
                   "  - {role: mx, port: 2526, proxy_protocol: true, trusted_proxies: [lb.test]}\n")
            .only_error() ==
        "4:68: listeners[1].trusted_proxies[0]: expected an IP address or network like "
        "10.0.0.0/8, got 'lb.test'");
}
