// Opening the token store the daemon and stokenctl work on: the backend of
// the configuration (tokens.store: an SQLite file, or a Redis server several
// nodes share), wrapped, when
// tokens.sync_contacts_folder is on, in the COI/Contacts folder mirror
// (mta/store/contacts_folder_sync.h) for users whose mail is in the built-in
// Maildir store. Both processes open it the same way, so a token changed by
// either reaches the user's folder.
//
// Contract: throws TokenStoreError when the store cannot be opened.
#pragma once

#include <filesystem>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

#include "mta/config/config.h"
#include "mta/routes.h"
#include "mta/store/contacts_folder_sync.h"
#include "tokens/redis_token_store.h"
#include "tokens/secret_rings.h"
#include "tokens/token_authority.h"
#include "tokens/token_store.h"

namespace stokend {

// What the store is opened for: the daemon verifies tokens for as long as
// it runs, and with the Redis backend keeps a verification cache current
// over pub/sub (tokens/redis_token_store.h); a tool (stokenctl) makes a few
// calls and asks Redis each time.
enum class TokenStoreUse { tool, daemon };

std::unique_ptr<tokens::TokenStore> open_token_store(const Config& config,
                                                     TokenStoreUse use = TokenStoreUse::tool);

// The configured backend alone, without the contacts folder mirror
// (stokenctl tokens migrate copies between backends).
std::unique_ptr<tokens::TokenStore> open_backend_token_store(
    const Config& config, TokenStoreUse use = TokenStoreUse::tool);

// With the Redis backend, checks that this node's secret rings agree with
// the other nodes' (RedisTokenStore::claim_secret_fingerprints): the reason
// when a secret id has another key elsewhere, nothing otherwise. Redis not
// answering is logged as a warning and not an error: the check runs again
// at the next start, and tokens fail as temporary failures meanwhile.
std::optional<std::string> check_shared_secrets(const Config& config,
                                                const tokens::SecretRings& rings);

// One log line at the daemon's start: which store, and for Redis whether it
// answers and keeps an append-only file (a warning when it does not).
void log_token_store_at_start(const Config& config);

// The Redis store's options from tokens.store (URL, password file,
// deadlines, WAIT) and the token validity (how long marks are kept).
// Throws TokenStoreError when the URL is bad or the password unreadable.
tokens::RedisTokenStore::Options redis_store_options(const Config& config);

// "sqlite PATH" or "redis URL", for log lines and stokenctl's output.
std::string token_store_description(const Config& config);

// The configured store wrapped in the contacts folder mirror whatever
// tokens.sync_contacts_folder says (stokenctl contacts sync).
std::unique_ptr<store::ContactsFolderSync> open_synced_token_store(
    const Config& config, TokenStoreUse use = TokenStoreUse::tool);

// The token policy of the configuration's tokens section.
tokens::TokenPolicy token_policy_of(const Config& config);

// ROOT/domain/local of a local user whose domain's route is the built-in
// Maildir store; nullopt for remote domains, domains routed elsewhere (lmtp,
// smtp) and addresses that cannot name a mailbox folder.
// `routes` is RouteTable(config.routes), built once by the caller.
std::optional<std::filesystem::path> builtin_maildir_mailbox(const Config& config,
                                                             const RouteTable& routes,
                                                             std::string_view address);

}  // namespace stokend
