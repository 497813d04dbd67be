// See token_service.h.
#include "daemon/token_service.h"

#include <spdlog/spdlog.h>

#include <cstdint>
#include <exception>
#include <optional>
#include <utility>

#include "mta/store/token_store_setup.h"

namespace stokend::wiring {

TokenService::TokenService(tokens::SecretRings rings,
                           std::unique_ptr<tokens::TokenStore> token_store,
                           tokens::TokenPolicy policy)
    : secrets(std::move(rings)),
      store(std::move(token_store)),
      authority(secrets, *store, policy) {}

std::unique_ptr<TokenService> build_token_service(const Config& config) {
  std::optional<tokens::SecretRings> secrets;
  std::unique_ptr<tokens::TokenStore> store;
  try {
    secrets.emplace(tokens::SecretRings::load_or_create(config.tokens.secrets_file.string(),
                                                        tokens::TokenAuthority::system_clock()));
    store = open_token_store(config, TokenStoreUse::daemon);
    log_token_store_at_start(config);
    if (const auto error = check_shared_secrets(config, *secrets)) {
      spdlog::critical("{}", *error);
      return nullptr;
    }
  } catch (const std::exception& error) {
    spdlog::critical("{}", error.what());
    return nullptr;
  }
  return std::make_unique<TokenService>(std::move(*secrets), std::move(store),
                                        token_policy_of(config));
}

std::function<void()> token_store_cleanup(TokenService& service) {
  const auto mark_age =
      service.authority.policy().temporary_validity + service.authority.policy().clock_skew;
  return [store = service.store.get(), mark_age] {
    const std::int64_t now = tokens::TokenAuthority::system_clock();
    try {
      std::size_t removed = store->remove_expired(now, now - mark_age.count());
      if (removed > 0) spdlog::info("token store: {} expired entries removed", removed);
    } catch (const std::exception& error) {
      spdlog::error("token store cleanup: {}", error.what());
    }
  };
}

}  // namespace stokend::wiring
