// Unit tests of tokens.store in the configuration (mta/config/
// token_sections.cc): a path is still the SQLite file, the map form picks a
// backend, and each Redis setting is checked with an error at its line.
#include <catch2/catch.hpp>
#include <string>

#include "tests/unit/config_fixture.h"

using namespace stokend;
using stokend::testing::LoadedText;
using stokend::testing::minimal_config;

TEST_CASE("tokens.store as a path is the SQLite file, as before", "[config][tokens]") {
  LoadedText loaded(minimal_config + "tokens:\n  store: /srv/tokens.db\n");
  INFO(stokend::testing::all_errors(loaded.result));
  REQUIRE(loaded.result.config);
  CHECK(loaded.result.config->tokens.store_backend == TokenStoreBackend::sqlite);
  CHECK(loaded.result.config->tokens.store == "/srv/tokens.db");
}

TEST_CASE("tokens.store as a map: backend sqlite with a path, or backend redis",
          "[config][tokens]") {
  SECTION("sqlite") {
    LoadedText loaded(minimal_config + "tokens:\n  store: {backend: sqlite, path: /srv/t.db}\n");
    INFO(stokend::testing::all_errors(loaded.result));
    REQUIRE(loaded.result.config);
    CHECK(loaded.result.config->tokens.store_backend == TokenStoreBackend::sqlite);
    CHECK(loaded.result.config->tokens.store == "/srv/t.db");
  }
  SECTION("redis with every setting") {
    LoadedText loaded(minimal_config +
                      "tokens:\n"
                      "  store:\n"
                      "    backend: redis\n"
                      "    url: redis://10.0.0.5:6380/3\n"
                      "    connect_timeout: 250ms\n"
                      "    command_timeout: 2s\n"
                      "    wait_replicas: 1\n"
                      "    wait_timeout: 500ms\n"
                      "    key_prefix: \"node-group-1:\"\n"
                      "    cache: false\n"
                      "    tls: false\n");
    INFO(stokend::testing::all_errors(loaded.result));
    REQUIRE(loaded.result.config);
    const TokenConfig& tokens = loaded.result.config->tokens;
    CHECK(tokens.store_backend == TokenStoreBackend::redis);
    CHECK(tokens.redis.url == "redis://10.0.0.5:6380/3");
    CHECK(tokens.redis.connect_timeout == std::chrono::milliseconds(250));
    CHECK(tokens.redis.command_timeout == std::chrono::seconds(2));
    CHECK(tokens.redis.wait_replicas == 1);
    CHECK(tokens.redis.wait_timeout == std::chrono::milliseconds(500));
    CHECK(tokens.redis.key_prefix == "node-group-1:");
    CHECK_FALSE(tokens.redis.cache);
    CHECK(tokens.redis.password_file.empty());
  }
  SECTION("redis defaults") {
    LoadedText loaded(minimal_config +
                      "tokens:\n  store: {backend: redis, url: \"unix:/run/redis.sock\"}\n");
    INFO(stokend::testing::all_errors(loaded.result));
    REQUIRE(loaded.result.config);
    const RedisStoreConfig& redis = loaded.result.config->tokens.redis;
    CHECK(redis.connect_timeout == defaults::redis_connect_timeout);
    CHECK(redis.command_timeout == defaults::redis_command_timeout);
    CHECK(redis.wait_replicas == defaults::redis_wait_replicas);
    CHECK(redis.key_prefix == defaults::redis_key_prefix);
    CHECK(redis.cache == defaults::redis_verification_cache);
    CHECK(redis.cache);
  }
}

TEST_CASE("bad Redis settings are refused with their reason and line", "[config][tokens]") {
  const std::string head = minimal_config + "tokens:\n  store:\n    backend: redis\n";
  CHECK(LoadedText(head).only_error() == "6:5: tokens.store: backend redis needs a url");
  CHECK(LoadedText(head + "    url: redis://u:p@host\n").only_error() ==
        "7:10: tokens.store.url: no user or password in the Redis URL: use password_file");
  CHECK(LoadedText(head + "    url: redis://host:99999\n").only_error().find("1 to 65535") !=
        std::string::npos);
  CHECK(LoadedText(head + "    url: redis://host\n    tls: true\n")
            .only_error()
            .find("TLS to Redis is not supported") != std::string::npos);
  CHECK(LoadedText(head + "    url: redis://host\n    path: /x.db\n")
            .only_error()
            .find("backend redis has none") != std::string::npos);
  CHECK(LoadedText(head + "    url: redis://host\n    key_prefix: \"a b\"\n")
            .only_error()
            .find("printable characters without spaces") != std::string::npos);
  CHECK(LoadedText(head + "    url: redis://host\n    password_file: /nonexistent/pw\n")
            .only_error()
            .find("/nonexistent/pw") != std::string::npos);
  CHECK(LoadedText(head + "    url: redis://host\n    cache: sometimes\n")
            .only_error()
            .find("tokens.store.cache") != std::string::npos);
  CHECK(LoadedText(minimal_config + "tokens:\n  store: {backend: mysql}\n")
            .only_error()
            .find("unknown backend 'mysql' (expected sqlite or redis)") != std::string::npos);
}
