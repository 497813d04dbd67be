// Unit tests for what `stokend --check-config` must catch because the daemon
// would refuse it at start: YAML mistakes at the place they are made (a tab
// in the indentation, an unclosed '{' or '['), DNS server lists c-ares
// refuses, certificate, key and CA files that are not PEM or do not belong
// together.
#include <catch2/catch.hpp>
#include <filesystem>
#include <string>

#include "mta/config/config.h"
#include "mta/config/yaml_syntax.h"
#include "tests/unit/config_fixture.h"

using stokend::testing::LoadedText;
using stokend::testing::minimal_config;
using stokend::testing::pem_pair;
using stokend::testing::TemporaryDirectory;
using stokend::testing::write_file;

namespace fs = std::filesystem;
using namespace stokend;

TEST_CASE("a tab in the indentation is reported at the tab", "[config][check]") {
  const LoadedText loaded(minimal_config + "limits:\n\tmax_recipients: 5\n");
  CHECK(loaded.only_error() ==
        "5:1: a tab in the indentation: YAML indents with spaces only, replace the tab with "
        "spaces");
  // After spaces, on a later line.
  const LoadedText later(minimal_config + "limits:\n  max_recipients: 5\n  \tmax_connections: 9\n");
  CHECK(later.only_error().starts_with("6:3: a tab in the indentation"));
}

TEST_CASE("an unclosed flow map or list is reported where it opens", "[config][check]") {
  const LoadedText map(
      "local_domains: [example.test]\n"
      "limits: {max_recipients: 5,\n"
      "  max_connections: 9\n"
      "listeners:\n"
      "  - {role: mx, port: 2525}\n");
  CHECK(map.only_error().starts_with("2:9: this '{' is never closed: a flow map needs its '}'"));
  const LoadedText list(
      "local_domains: [example.test, \"a]b\" # ]\n"
      "listeners:\n"
      "  - {role: mx, port: 2525}\n");
  CHECK(list.only_error().starts_with("1:16: this '[' is never closed: a flow list needs its ']'"));
}

TEST_CASE("the syntax locator leaves other errors to the parser", "[config][check]") {
  CHECK_FALSE(
      config_reading::locate_syntax_error("a: {b: 1}\nc: [1, 2]\n", "end of map flow not found"));
  CHECK_FALSE(config_reading::locate_syntax_error("a: b{c\n", "something else"));
  // Brackets inside quotes, comments and plain scalars are not flow.
  CHECK_FALSE(config_reading::locate_syntax_error("a: '{'\nb: x[y\n# {\nc: \"[\\\"\"\n",
                                                  "end of sequence flow not found"));
}

TEST_CASE("dns.servers takes IP addresses with optional ports only", "[config][check]") {
  for (const char* good : {"127.0.0.1", "127.0.0.1:5353", "::1", "[::1]", "[::1]:53",
                           "192.0.2.1:53,[2001:db8::1]:5353,198.51.100.7"}) {
    const LoadedText loaded(minimal_config + "dns: {servers: \"" + good + "\"}\n");
    INFO(good << ": " << stokend::testing::all_errors(loaded.result));
    CHECK(loaded.result.config);
  }
  const LoadedText garbage(minimal_config + "dns:\n  servers: \"ns1.example.net\"\n");
  CHECK(garbage.only_error() ==
        "5:12: dns.servers: 'ns1.example.net' is not a DNS server address (expected IP "
        "addresses with an optional port, separated by commas: 127.0.0.1:53, [::1]:53)");
  for (const char* bad : {"127.0.0.1:0", "127.0.0.1:65536", "127.0.0.1,", "[127.0.0.1]:53", "[::1",
                          "127.0.0.1 ,::1", "300.1.1.1", "localhost:53"}) {
    const LoadedText loaded(minimal_config + "dns: {servers: \"" + bad + "\"}\n");
    INFO(bad);
    CHECK(loaded.only_error().find("is not a DNS server address") != std::string::npos);
  }
}

TEST_CASE("certificate, key and CA files must load as PEM", "[config][check]") {
  TemporaryDirectory directory;
  const auto pair = pem_pair(directory.path() / "one");
  const auto other = pem_pair(directory.path() / "two");
  const fs::path not_pem = directory.path() / "not.pem";
  write_file(not_pem, "this is no certificate\n");
  auto tls = [](const fs::path& certificate, const fs::path& key) {
    return minimal_config + "tls:\n  certificate: \"" + certificate.string() +
           "\"\n  private_key: \"" + key.string() + "\"\n";
  };

  SECTION("a matching pair loads") {
    const LoadedText loaded(tls(pair.certificate, pair.private_key));
    CHECK(loaded.result.config);
  }
  SECTION("a certificate file that is not PEM") {
    const LoadedText loaded(tls(not_pem, pair.private_key));
    CHECK(loaded.only_error() ==
          "5:16: tls.certificate: '" + not_pem.string() +
              "' is not a PEM certificate (expected a '-----BEGIN CERTIFICATE-----' block)");
  }
  SECTION("a key file that is not PEM (a certificate, say)") {
    const LoadedText loaded(tls(pair.certificate, pair.certificate));
    CHECK(loaded.only_error().starts_with("6:16: tls.private_key: '" + pair.certificate.string() +
                                          "' is not an unencrypted PEM private key"));
  }
  SECTION("a key of another certificate") {
    const LoadedText loaded(tls(pair.certificate, other.private_key));
    CHECK(loaded.only_error() ==
          "6:16: tls.private_key: the key in '" + other.private_key.string() +
              "' does not belong to the certificate in '" + pair.certificate.string() + "'");
  }
  SECTION("CA files") {
    const LoadedText good(minimal_config + "fast_lane: {ca_file: \"" + pair.certificate.string() +
                          "\"}\n");
    CHECK(good.result.config);
    const LoadedText bad(minimal_config + "delivery:\n  tls_policy_ca_file: \"" + not_pem.string() +
                         "\"\n");
    CHECK(bad.only_error() == "5:23: delivery.tls_policy_ca_file: '" + not_pem.string() +
                                  "' holds no PEM CA certificate (expected '-----BEGIN "
                                  "CERTIFICATE-----' blocks)");
  }
}
