// Smarthost credentials (mta/relay_credentials.h): the file format, the
// refusal of a file others may read, and how load_config() puts the
// credentials onto the smtp route they name.
#include "mta/relay_credentials.h"

#include <sys/stat.h>

#include <catch2/catch.hpp>

#include "mta/config/config.h"
#include "tests/unit/config_fixture.h"

using namespace stokend;
using stokend::testing::minimal_config;
using stokend::testing::TemporaryDirectory;
using stokend::testing::write_file;

namespace {

std::string refusal(std::string_view text) {
  std::string error;
  CHECK_FALSE(parse_relay_credentials(text, error));
  return error;
}

}  // namespace

TEST_CASE("relay credentials: Postfix's sasl_passwd lines", "[relay_credentials]") {
  std::string error;
  const auto map = parse_relay_credentials(
      "# smarthosts\n\n[Relay.Example]:587   stokend@example.org:pa:ss word\r\n"
      "[192.0.2.7]:25\tuser:x\n",
      error);
  INFO(error);
  REQUIRE(map);
  REQUIRE(map->size() == 2);
  CHECK(map->at("[relay.example]:587").login == "stokend@example.org");
  CHECK(map->at("[relay.example]:587").password == "pa:ss word");
  CHECK(map->at("[192.0.2.7]:25").password == "x");
}

TEST_CASE("relay credentials: a bad line is named, its password never quoted",
          "[relay_credentials]") {
  CHECK(refusal("relay.example:587 u:p\n") ==
        "line 1: expected [host]:port at the start of the line");
  CHECK(refusal("\n[relay.example]:0 u:p\n") ==
        "line 2: expected [host]:port at the start of the line");
  CHECK(refusal("[relay.example]:587 secretwithoutcolon\n") ==
        "line 1: expected login:password after [relay.example]:587");
  CHECK(refusal("[relay.example]:587 :secret\n") ==
        "line 1: expected login:password after [relay.example]:587");
  CHECK(refusal("[relay.example]:587 u:\n") ==
        "line 1: expected login:password after [relay.example]:587");
  CHECK(refusal("[a]:1 u:p\n[A]:1 v:q\n") == "line 2: second entry for [a]:1");
  CHECK(refusal(std::string("[a]:1 u:p\x01q\n")) ==
        "line 1: control character in the credentials of [a]:1");
}

TEST_CASE("relay credentials: a file group or others may read is refused", "[relay_credentials]") {
  TemporaryDirectory directory;
  const auto file = directory.path() / "relay_passwd";
  write_file(file, "[relay.example]:587 u:p\n");
  ::chmod(file.c_str(), 0640);
  std::string error;
  CHECK_FALSE(load_relay_credentials(file, error));
  CHECK(error == file.string() +
                     ": mode 0640 lets group or others read it; it holds passwords "
                     "(chmod 600 " +
                     file.string() + ")");
  ::chmod(file.c_str(), 0600);
  error.clear();
  const auto map = load_relay_credentials(file, error);
  INFO(error);
  REQUIRE(map);
  CHECK(map->at("[relay.example]:587").login == "u");
  CHECK_FALSE(load_relay_credentials(directory.path() / "missing", error));
  CHECK_THAT(error, Catch::Contains("No such file"));
}

TEST_CASE("relay credentials go onto the smtp route they name, with TLS required",
          "[relay_credentials]") {
  TemporaryDirectory directory;
  const auto secrets = directory.path() / "relay_passwd";
  write_file(secrets, "[relay.example]:587 stokend:secret\n");
  ::chmod(secrets.c_str(), 0600);
  const auto file = directory.path() / "stokend.yaml";
  write_file(file, minimal_config +
                       "routes:\n  \"*\": \"smtp:[relay.example]:587\"\n"
                       "  b.test: \"smtp:[127.0.0.1]:2525\"\n"
                       "delivery:\n  relay_credentials: " +
                       secrets.string() + "\n");
  const ConfigLoadResult loaded = load_config(file);
  REQUIRE(loaded.errors.empty());
  const Route& relay = loaded.config->routes.at("*");
  CHECK(relay.next_hop.auth_login == "stokend");
  CHECK(relay.next_hop.auth_password == "secret");
  CHECK(relay.next_hop.tls_policy == TlsPolicy::required);
  CHECK(relay.to_string().find("secret") == std::string::npos);
  const Route& other = loaded.config->routes.at("b.test");
  CHECK(other.next_hop.auth_login.empty());
  CHECK(other.next_hop.tls_policy == TlsPolicy::opportunistic);
}

TEST_CASE("relay credentials for a next hop no route uses are an error", "[relay_credentials]") {
  TemporaryDirectory directory;
  const auto secrets = directory.path() / "relay_passwd";
  write_file(secrets, "[relay.exmaple]:587 stokend:secret\n");
  ::chmod(secrets.c_str(), 0600);
  const auto file = directory.path() / "stokend.yaml";
  write_file(file, minimal_config + "routes:\n  \"*\": \"smtp:[relay.example]:587\"\n" +
                       "delivery:\n  relay_credentials: " + secrets.string() + "\n");
  const ConfigLoadResult loaded = load_config(file);
  REQUIRE(loaded.errors.size() == 1);
  CHECK_THAT(loaded.errors[0].to_string(),
             Catch::EndsWith("delivery.relay_credentials: [relay.exmaple]:587 is the next hop of "
                             "no smtp route"));
}
