// Harvesting: the Submission-Token header fields of inbound mail (draft §6.2,
// rfcdraft/ "Distribution") become tokens in the recipient's wallet, so
// that the recipient's replies can take the fast lane.
//
// Contract:
// - A token is kept for a local recipient only if it is in the named format,
//   its pair hash equals SHA3-256(norm(recipient) ":" norm(sender)) — the
//   issuer's pair (remote = our user, local = the sender) — and it has not
//   expired. The sender is the envelope sender (MAIL FROM), not From: the
//   pair binds the address the token will be used from. Everything else is
//   ignored, with a reason for a debug log.
// - store_harvested() never lets a harvested (temporary) token replace an
//   unexpired permanent token of the same pair, and otherwise keeps the newer
//   token (TokenStore::put_wallet). It writes to the store: call it on a
//   worker thread.
// - Pure but for store_harvested(); never throws except TokenStoreError from
//   store_harvested().
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "message/headers.h"
#include "tokens/token_store.h"

namespace stokend::tokens {

inline constexpr std::string_view submission_token_field = "Submission-Token";

struct HarvestResult {
  std::vector<WalletToken> accepted;  // one per (recipient, token) that matched
  std::vector<std::string> ignored;   // why each other token was ignored
  std::size_t fields = 0;             // Submission-Token fields seen
};

HarvestResult harvest_submission_tokens(const std::vector<message::HeaderField>& fields,
                                        std::string_view sender,
                                        const std::vector<std::string>& local_recipients,
                                        std::int64_t now);

// Returns how many tokens are now in wallets.
std::size_t store_harvested(TokenStore& store, const std::vector<WalletToken>& tokens,
                            std::int64_t now);

}  // namespace stokend::tokens
