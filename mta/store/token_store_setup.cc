// See token_store_setup.h.
#include "mta/store/token_store_setup.h"

#include <spdlog/spdlog.h>

#include <utility>

#include "mta/store/contacts_folder_sync.h"
#include "mta/store/maildir_layout.h"
#include "mta/store/maildir_permissions.h"
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

std::unique_ptr<tokens::TokenStore> open_token_store(const Config& config) {
  if (!config.tokens.sync_contacts_folder) {
    return std::make_unique<tokens::SqliteTokenStore>(config.tokens.store);
  }
  return open_synced_token_store(config);
}

std::unique_ptr<store::ContactsFolderSync> open_synced_token_store(const Config& config) {
  auto store = std::make_unique<tokens::SqliteTokenStore>(config.tokens.store);
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
