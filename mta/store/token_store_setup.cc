// See token_store_setup.h.
#include "mta/store/token_store_setup.h"

#include <spdlog/spdlog.h>

#include <fstream>
#include <utility>

#include "common/base64.h"
#include "mta/store/contacts_folder_sync.h"
#include "mta/store/maildir_layout.h"
#include "mta/store/maildir_permissions.h"
#include "tokens/mac.h"
#include "tokens/redis_token_store.h"
#include "tokens/sqlite_token_store.h"

namespace stokend {

std::optional<std::filesystem::path> builtin_maildir_mailbox(const Config& config,
                                                             const RouteTable& routes,
                                                             std::string_view address) {
  const std::size_t at = address.rfind('@');
  if (at == std::string_view::npos) return std::nullopt;
  const std::string_view domain = address.substr(at + 1);
  if (!config.is_local_domain(domain)) return std::nullopt;
  if (routes.route_for(domain, true).transport != Route::Transport::maildir) return std::nullopt;
  return store::mailbox_of_address(config.maildir_root, address);
}

tokens::RedisTokenStore::Options redis_store_options(const Config& config) {
  const RedisStoreConfig& redis = config.tokens.redis;
  tokens::RedisTokenStore::Options options;
  const auto parsed = tokens::parse_redis_url(redis.url);
  if (!parsed.error.empty()) {
    throw tokens::TokenStoreError("tokens.store.url: " + parsed.error);
  }
  options.connection.endpoint = parsed.endpoint;
  options.connection.connect_timeout = redis.connect_timeout;
  options.connection.command_timeout = redis.command_timeout;
  if (!redis.password_file.empty()) {
    // The first line, without its line ending; never logged.
    std::ifstream file(redis.password_file);
    if (!file || !std::getline(file, options.connection.password)) {
      throw tokens::TokenStoreError(redis.password_file.string() +
                                    ": cannot read the Redis password");
    }
    if (!options.connection.password.empty() && options.connection.password.back() == '\r') {
      options.connection.password.pop_back();
    }
  }
  options.key_prefix = redis.key_prefix;
  // A mark matters while a temporary token created before it can verify.
  options.mark_lifetime = config.tokens.temporary_validity + config.tokens.clock_skew;
  options.wait_replicas = static_cast<int>(redis.wait_replicas);
  options.wait_timeout = redis.wait_timeout;
  options.ping_interval = defaults::redis_cache_ping_interval;
  options.silence_limit = defaults::redis_cache_silence_limit;
  return options;
}

std::unique_ptr<tokens::TokenStore> open_backend_token_store(const Config& config,
                                                             TokenStoreUse use) {
  if (config.tokens.store_backend == TokenStoreBackend::redis) {
    auto options = redis_store_options(config);
    options.verification_cache = use == TokenStoreUse::daemon && config.tokens.redis.cache;
    return std::make_unique<tokens::RedisTokenStore>(std::move(options));
  }
  return std::make_unique<tokens::SqliteTokenStore>(config.tokens.store);
}

std::string token_store_description(const Config& config) {
  if (config.tokens.store_backend == TokenStoreBackend::redis) {
    const auto parsed = tokens::parse_redis_url(config.tokens.redis.url);
    return "redis " + (parsed.error.empty() ? parsed.endpoint.describe() : config.tokens.redis.url);
  }
  return "sqlite " + config.tokens.store.string();
}

std::optional<std::string> check_shared_secrets(const Config& config,
                                                const tokens::SecretRings& rings) {
  if (config.tokens.store_backend != TokenStoreBackend::redis) return std::nullopt;
  // The fingerprint is a MAC made with the secret, so it shows whether two
  // keys are equal without revealing either.
  std::vector<std::pair<std::string, std::string>> fingerprints;
  for (const tokens::Secret& secret : rings.snapshot()->secrets) {
    const tokens::MacValue mac =
        tokens::HmacSha256Key(secret.key).compute("stokend secret fingerprint");
    fingerprints.emplace_back(
        secret.id,
        encode_base64(std::string_view(reinterpret_cast<const char*>(mac.data()), mac.size())));
  }
  try {
    tokens::RedisTokenStore store(redis_store_options(config));
    const auto conflicts = store.claim_secret_fingerprints(fingerprints);
    if (conflicts.empty()) return std::nullopt;
    std::string ids;
    for (const auto& id : conflicts) ids += (ids.empty() ? "" : ", ") + id;
    return config.tokens.secrets_file.string() + ": secret " + ids +
           " differs from the one the other nodes of " + store.describe() +
           " use: give every node the same secrets file";
  } catch (const tokens::TokenStoreError& error) {
    spdlog::warn("token secrets not compared with the other nodes': {}", error.what());
    return std::nullopt;
  }
}

void log_token_store_at_start(const Config& config) {
  const std::string where = token_store_description(config);
  if (config.tokens.store_backend != TokenStoreBackend::redis) {
    spdlog::info("token store: {}", where);
    return;
  }
  try {
    tokens::RedisTokenStore store(redis_store_options(config));
    store.ping();
    const std::string persistence = store.persistence_summary();
    if (persistence.find("aof_enabled:1") == std::string::npos) {
      spdlog::warn(
          "token store: {}: Redis runs without appendonly ({}): a restart of Redis "
          "loses the tokens written since its last snapshot",
          where, persistence);
    } else {
      spdlog::info("token store: {} ({})", where, persistence);
    }
  } catch (const tokens::TokenStoreError& error) {
    // Not fatal: token operations fail as temporary failures until Redis
    // answers, and mail keeps flowing by MX meanwhile.
    spdlog::warn("token store: {}: not reachable at start: {}", where, error.what());
  }
}

std::unique_ptr<tokens::TokenStore> open_token_store(const Config& config, TokenStoreUse use) {
  if (!config.tokens.sync_contacts_folder) return open_backend_token_store(config, use);
  return open_synced_token_store(config, use);
}

std::unique_ptr<store::ContactsFolderSync> open_synced_token_store(const Config& config,
                                                                   TokenStoreUse use) {
  auto store = open_backend_token_store(config, use);
  // The configuration as it is now: a running daemon reads its
  // configuration once, so routes and domains do not change under it.
  auto mailbox_of =
      [config = std::make_shared<const Config>(config),
       routes = std::make_shared<const RouteTable>(config.routes)](std::string_view address) {
        return builtin_maildir_mailbox(*config, *routes, address);
      };
  auto synced = std::make_unique<store::ContactsFolderSync>(std::move(store), std::move(mailbox_of),
                                                            config.hostname);
  // As the daemon's deliveries do (which refuse to start when this fails).
  std::string error;
  if (const auto permissions = store::maildir_permissions_of(config, error)) {
    synced->set_maildir_permissions(*permissions);
  } else {
    spdlog::warn("COI/Contacts folders keep the default owner and modes: {}", error);
  }
  return synced;
}

tokens::TokenPolicy token_policy_of(const Config& config) {
  tokens::TokenPolicy policy;
  policy.temporary_validity = config.tokens.temporary_validity;
  policy.permanent_validity = config.tokens.permanent_validity;
  policy.clock_skew = config.tokens.clock_skew;
  policy.renew_before = config.tokens.renew_before;
  return policy;
}

}  // namespace stokend
