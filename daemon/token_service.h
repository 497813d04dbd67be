// The Submission Token extension's state in the daemon: the secret rings
// (created on first start), the token store (SQLite, mirrored into users'
// COI/Contacts folders: mta/store/token_store_setup.h) and the authority that
// mints and verifies tokens with them; and the periodic cleanup of the store.
//
// Contract: build_token_service() logs why (critical) and returns null when
// the secrets or the store cannot be opened. A TokenService stays where it
// was built (the authority refers to the secrets and the store).
#pragma once

#include <functional>
#include <memory>

#include "mta/config/config.h"
#include "tokens/secret_rings.h"
#include "tokens/token_authority.h"
#include "tokens/token_store.h"

namespace stokend::wiring {

struct TokenService {
  TokenService(tokens::SecretRings secrets, std::unique_ptr<tokens::TokenStore> store,
               tokens::TokenPolicy policy);
  TokenService(const TokenService&) = delete;
  TokenService& operator=(const TokenService&) = delete;

  tokens::SecretRings secrets;
  std::unique_ptr<tokens::TokenStore> store;
  tokens::TokenAuthority authority;
};

std::unique_ptr<TokenService> build_token_service(const Config& config);

// Removes expired tokens, and revocation marks that can no longer kill
// anything: a temporary token created at or before a mark is dead by mark +
// its validity; the clock skew allowance keeps a margin. Runs on a worker
// thread (periodic_job.h) and logs its own errors.
std::function<void()> token_store_cleanup(TokenService& service);

}  // namespace stokend::wiring
