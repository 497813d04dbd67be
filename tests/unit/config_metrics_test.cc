// Unit tests for the metrics section of stokend.yaml (mta/config/
// metrics_section.cc): off by default, the listen address in its two
// spellings, the limits, and the errors.
#include <catch2/catch.hpp>
#include <chrono>

#include "mta/config/config.h"
#include "mta/config/config_reader.h"
#include "tests/unit/config_fixture.h"

using stokend::config_reading::parse_listen_address;
using stokend::testing::all_errors;
using stokend::testing::LoadedText;
using stokend::testing::minimal_config;
using namespace std::chrono_literals;

TEST_CASE("metrics are off unless listen is set", "[config][metrics]") {
  for (const std::string& text : {minimal_config, minimal_config + "metrics: {listen: \"\"}\n"}) {
    const LoadedText loaded(text);
    INFO(all_errors(loaded.result));
    REQUIRE(loaded.result.config);
    CHECK_FALSE(loaded.result.config->metrics.enabled());
    CHECK(loaded.result.config->metrics.max_connections ==
          stokend::defaults::metrics_max_connections);
    CHECK(loaded.result.config->metrics.timeout == stokend::defaults::metrics_timeout);
  }
}

TEST_CASE("the metrics section loads every key", "[config][metrics]") {
  const LoadedText loaded(minimal_config +
                          "metrics:\n  listen: 127.0.0.1:9325\n  max_connections: 4\n"
                          "  timeout: 2s\n  max_request_size: 4K\n");
  INFO(all_errors(loaded.result));
  REQUIRE(loaded.result.config);
  const auto& metrics = loaded.result.config->metrics;
  CHECK(metrics.enabled());
  CHECK(metrics.address == "127.0.0.1");
  CHECK(metrics.port == 9325);
  CHECK(metrics.max_connections == 4);
  CHECK(metrics.timeout == 2s);
  CHECK(metrics.max_request_size == 4096);
}

TEST_CASE("metrics.listen: IPv4, and IPv6 in brackets", "[config][metrics]") {
  const auto v4 = parse_listen_address("0.0.0.0:80");
  REQUIRE(v4);
  CHECK(v4->address == "0.0.0.0");
  CHECK(v4->port == 80);
  const auto v6 = parse_listen_address("[::1]:9325");
  REQUIRE(v6);
  CHECK(v6->address == "::1");
  CHECK(v6->port == 9325);
  for (const char* bad : {"", "9325", "127.0.0.1", "127.0.0.1:", "127.0.0.1:0", "127.0.0.1:65536",
                          "127.0.0.1:99999999", "localhost:9325", "::1:9325", "[::1]9325",
                          "[127.0.0.1]:9325", "[::1:9325", "127.0.0.1:+80", "127.0.0.1:80 "}) {
    INFO(bad);
    CHECK_FALSE(parse_listen_address(bad));
  }
}

TEST_CASE("a bad metrics.listen is reported at its value", "[config][metrics]") {
  const LoadedText loaded(minimal_config + "metrics: {listen: \"localhost:9325\"}\n");
  CHECK_THAT(loaded.only_error(),
             Catch::StartsWith("4:19: metrics.listen: expected ADDRESS:PORT with an IP address"));
}

TEST_CASE("metrics.listen may not be an SMTP listener's address", "[config][metrics]") {
  const LoadedText loaded(minimal_config + "metrics: {listen: \"127.0.0.1:2525\"}\n");
  CHECK_THAT(loaded.only_error(),
             Catch::Contains("metrics.listen: 127.0.0.1:2525 is the address of the listener at "
                             "line 3"));
}

TEST_CASE("an unknown metrics key is refused", "[config][metrics]") {
  const LoadedText loaded(minimal_config + "metrics: {listen: \"127.0.0.1:9325\", port: 1}\n");
  REQUIRE(loaded.result.errors.size() == 1);
  CHECK_THAT(all_errors(loaded.result), Catch::Contains("unknown key 'port' in metrics"));
}
