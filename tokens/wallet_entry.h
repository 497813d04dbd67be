// Turning a token another server gave one of our users into a wallet entry
// (TokenOut), and telling whether a wallet entry can be used.
//
// Contract: a token given to our user `local_address` for delivery to
// `remote_address` was issued by the remote side for its pair (remote = our
// user, local = its user), so its pair hash must be
// SHA3-256(norm(local_address) ":" norm(remote_address)) (tokens/pair_hash.h).
// wallet_entry_for() accepts a token only in the named format, with that
// hash, not yet expired at `now`; otherwise it says why. Pure; never throws.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "tokens/token_store.h"

namespace stokend::tokens {

// The reason wallet_entry_for() gives for a token of another pair.
inline constexpr std::string_view wallet_entry_wrong_pair =
    "its pair hash is not that of the two addresses";

struct WalletEntryCheck {
  std::optional<WalletToken> entry;
  std::string reason;  // why not, when entry is empty
};

WalletEntryCheck wallet_entry_for(std::string_view token, std::string_view local_address,
                                  std::string_view remote_address, std::int64_t now, bool permanent,
                                  std::string source);

// Whether a stored entry may be used now for (local, remote): unexpired and
// bound to that pair.
bool wallet_entry_usable(const WalletToken& entry, std::string_view local_address,
                         std::string_view remote_address, std::int64_t now);

}  // namespace stokend::tokens
