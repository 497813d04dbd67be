// Sample tokens for the token store tests (SQLite, Redis, and the contract
// both keep): an issued token of a pair, and a wallet token of alice's.
// Each lives 1000 seconds from its creation time.
#pragma once

#include <cstdint>
#include <string>

#include "tokens/token_store.h"

namespace stokend::testing {

inline tokens::IssuedToken issued(const std::string& token, const std::string& pair_hash,
                                  std::int64_t created, const std::string& local = "alice@a.test",
                                  const std::string& remote = "bob@b.test") {
  return tokens::IssuedToken{token, local, remote, pair_hash, created, created + 1000};
}

inline tokens::WalletToken wallet(const std::string& token, std::int64_t created,
                                  const std::string& remote = "bob@b.test") {
  return tokens::WalletToken{"alice@a.test", remote,         token, "hash",
                             created,        created + 1000, false, "header"};
}

}  // namespace stokend::testing
