// See wallet_entry.h.
#include "tokens/wallet_entry.h"

#include "tokens/pair_hash.h"
#include "tokens/token_format.h"

namespace stokend::tokens {

WalletEntryCheck wallet_entry_for(std::string_view token, std::string_view local_address,
                                  std::string_view remote_address, std::int64_t now, bool permanent,
                                  std::string source) {
  WalletEntryCheck check;
  const auto lifetime = token_lifetime(token);
  if (!lifetime || !lifetime->hash) {
    check.reason = "not a token in the named format";
    return check;
  }
  const std::string expected = base64_unpadded(pair_hash(local_address, remote_address));
  if (*lifetime->hash != expected) {
    check.reason = wallet_entry_wrong_pair;
    return check;
  }
  if (lifetime->created + lifetime->validity <= now) {
    check.reason = "expired";
    return check;
  }
  WalletToken entry;
  entry.local_address = normalize_address(local_address);
  entry.remote_address = normalize_address(remote_address);
  entry.token = std::string(token);
  entry.pair_hash = expected;
  entry.created = lifetime->created;
  entry.expires = lifetime->created + lifetime->validity;
  entry.permanent = permanent;
  entry.source = std::move(source);
  check.entry = std::move(entry);
  return check;
}

bool wallet_entry_usable(const WalletToken& entry, std::string_view local_address,
                         std::string_view remote_address, std::int64_t now) {
  return entry.expires > now &&
         entry.pair_hash == base64_unpadded(pair_hash(local_address, remote_address));
}

}  // namespace stokend::tokens
