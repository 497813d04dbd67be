// See harvest.h.
#include "tokens/harvest.h"

#include "tokens/pair_hash.h"
#include "tokens/token_format.h"
#include "tokens/wallet_entry.h"

namespace stokend::tokens {

HarvestResult harvest_submission_tokens(const std::vector<message::HeaderField>& fields,
                                        std::string_view sender,
                                        const std::vector<std::string>& local_recipients,
                                        std::int64_t now) {
  HarvestResult result;
  for (const std::string& value : message::find_all_headers(fields, submission_token_field)) {
    ++result.fields;
    // The value is the token, possibly in angle brackets as the draft's
    // example writes it.
    std::string_view text = value;
    if (text.size() >= 2 && text.front() == '<' && text.back() == '>') {
      text = text.substr(1, text.size() - 2);
    }
    // The issuer's pair is (remote = our recipient, local = the sender).
    std::string reason = "hash matches no recipient with this sender";
    bool matched = false;
    for (const auto& recipient : local_recipients) {
      auto check = wallet_entry_for(text, recipient, sender, now, false, "header");
      if (check.entry) {
        result.accepted.push_back(std::move(*check.entry));
        matched = true;
      } else if (check.reason != wallet_entry_wrong_pair) {
        reason = check.reason;  // the same for every recipient: not a token, or expired
      }
    }
    if (!matched) result.ignored.push_back(reason);
  }
  return result;
}

std::size_t store_harvested(TokenStore& store, const std::vector<WalletToken>& tokens,
                            std::int64_t now) {
  std::size_t stored = 0;
  for (const auto& token : tokens) {
    // A permanent token came over a verified channel (2.1.13, MYSTOKEN); a
    // header token from ordinary mail must not push it out.
    const auto existing = store.find_wallet(token.local_address, token.remote_address);
    if (existing && existing->permanent && existing->expires > now) continue;
    if (store.put_wallet(token)) ++stored;
  }
  return stored;
}

}  // namespace stokend::tokens
