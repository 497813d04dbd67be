// Which settings a configuration reload applies and which wait for a
// restart (daemon/reload.h): the restart-only ones are named and set back to
// their running values, everything else is taken as loaded.
#include <catch2/catch.hpp>
#include <chrono>
#include <string>
#include <vector>

#include "daemon/reload.h"

using namespace stokend;
using stokend::wiring::keep_restart_only_settings;

TEST_CASE("a reload keeps restart-only settings and names them", "[reload]") {
  Config running;
  running.hostname = "mx.example.test";
  running.local_domains = {"example.test"};
  ListenerConfig listener;
  listener.role = Role::mx;
  listener.port = 2525;
  running.listeners = {listener};
  running.worker_threads = 4;
  running.dns.servers = "127.0.0.1:53";

  Config wanted = running;
  wanted.listeners[0].port = 2526;
  wanted.worker_threads = 8;
  wanted.dns.servers = "127.0.0.2:53";
  wanted.queue.first_retry = std::chrono::minutes(1);
  // Live settings.
  wanted.limits.max_recipients = 7;
  wanted.local_domains = {"example.test", "other.test"};
  wanted.fast_lane.distribute_tokens = TokenDistribution::off;
  wanted.routes["other.test"] = Route{Route::Transport::maildir, {}, {}};

  const auto changed = keep_restart_only_settings(running, wanted);
  CHECK(changed == std::vector<std::string>{"listeners", "worker_threads", "dns.servers",
                                            "queue.first_retry"});
  CHECK(wanted.listeners == running.listeners);
  CHECK(wanted.worker_threads == 4);
  CHECK(wanted.dns.servers == "127.0.0.1:53");
  CHECK(wanted.queue.first_retry == running.queue.first_retry);
  CHECK(wanted.limits.max_recipients == 7);
  CHECK(wanted.local_domains.size() == 2);
  CHECK(wanted.fast_lane.distribute_tokens == TokenDistribution::off);
  CHECK(wanted.routes.contains("other.test"));

  Config same = running;
  CHECK(keep_restart_only_settings(running, same).empty());
}

TEST_CASE("a reload keeps the token store's backend and Redis settings", "[reload]") {
  Config running;
  running.tokens.redis.url = "redis://127.0.0.1:6379/0";
  Config wanted = running;
  wanted.tokens.store_backend = TokenStoreBackend::redis;
  wanted.tokens.redis.url = "redis://127.0.0.1:6380/0";
  wanted.tokens.redis.cache = false;
  const auto changed = keep_restart_only_settings(running, wanted);
  CHECK(changed == std::vector<std::string>{"tokens.store.backend", "tokens.store.redis"});
  CHECK(wanted.tokens.store_backend == TokenStoreBackend::sqlite);
  CHECK(wanted.tokens.redis.url == "redis://127.0.0.1:6379/0");
  CHECK(wanted.tokens.redis.cache);
}
