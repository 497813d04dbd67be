// Unit tests for the auth section of stokend.yaml (mta/config/
// auth_section.cc): the users file stays the default; dovecot needs both
// sockets and an lmtp or smtp route for every local domain; bad values are
// refused at their place.
#include <catch2/catch.hpp>
#include <chrono>

#include "mta/config/config.h"
#include "tests/unit/config_fixture.h"

using stokend::testing::all_errors;
using stokend::testing::LoadedText;
using stokend::testing::minimal_config;
using namespace std::chrono_literals;

namespace {

const std::string dovecot_config = minimal_config +
                                   "routes: {example.test: \"lmtp:unix:/run/dovecot/lmtp\"}\n"
                                   "auth:\n"
                                   "  backend: dovecot\n"
                                   "  socket: unix:/run/dovecot/auth-client\n"
                                   "  userdb_socket: inet:127.0.0.1:12345\n";

}  // namespace

TEST_CASE("auth defaults to the users file", "[config][auth]") {
  const LoadedText loaded(minimal_config);
  INFO(all_errors(loaded.result));
  REQUIRE(loaded.result.config);
  const auto& auth = loaded.result.config->auth;
  CHECK(auth.backend == stokend::AuthBackend::users_file);
  CHECK(auth.cache_ttl == stokend::defaults::dovecot_cache_ttl);
  CHECK(auth.timeout == stokend::defaults::dovecot_timeout);
}

TEST_CASE("auth: backend dovecot reads both sockets", "[config][auth]") {
  const LoadedText loaded(dovecot_config + "  cache_ttl: 0\n  timeout: 2s\n");
  INFO(all_errors(loaded.result));
  REQUIRE(loaded.result.config);
  const auto& auth = loaded.result.config->auth;
  CHECK(auth.backend == stokend::AuthBackend::dovecot);
  CHECK(auth.socket.unix_path == "/run/dovecot/auth-client");
  CHECK(auth.userdb_socket.host == "127.0.0.1");
  CHECK(auth.userdb_socket.port == 12345);
  CHECK(auth.cache_ttl == 0ms);
  CHECK(auth.timeout == 2s);
}

TEST_CASE("auth: what is refused, and where", "[config][auth]") {
  struct Case {
    std::string text;
    std::string error;
  };
  const std::vector<Case> cases = {
      {minimal_config + "auth: {backend: ldap}\n", "auth.backend"},
      {minimal_config + "routes: {example.test: \"lmtp:unix:/x\"}\nauth: {backend: dovecot, "
                        "userdb_socket: unix:/a}\n",
       "auth.socket: required with backend dovecot"},
      {minimal_config + "routes: {example.test: \"lmtp:unix:/x\"}\nauth: {backend: dovecot, "
                        "socket: unix:/a}\n",
       "auth.userdb_socket: required with backend dovecot"},
      {dovecot_config + "  timeout: 0\n", "auth.timeout"},
      {minimal_config + "auth: {socket: tcp:1.2.3.4:5}\n",
       "auth.socket: expected unix:PATH or inet:HOST:PORT"},
      {minimal_config + "auth: {socket: \"inet:localhost:5\"}\n",
       "auth.socket: host must be an IP address"},
      {minimal_config + "auth: {colour: blue}\n", "colour"},
      // The built-in Maildir store knows only the users file.
      {minimal_config + "auth: {backend: dovecot, socket: unix:/a, userdb_socket: unix:/b}\n",
       "local domain 'example.test' has no lmtp or smtp route"},
  };
  for (const auto& [text, error] : cases) {
    INFO(text);
    const LoadedText loaded(text);
    CHECK_FALSE(loaded.result.config);
    CHECK_THAT(all_errors(loaded.result), Catch::Contains(error));
  }
}
