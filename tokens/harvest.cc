// See harvest.h.
#include "tokens/harvest.h"

#include "tokens/pair_hash.h"
#include "tokens/token_format.h"

namespace stokend::tokens {

HarvestResult harvest_submission_tokens(const std::vector<message::HeaderField>& fields,
                                        std::string_view sender,
                                        const std::vector<std::string>& local_recipients,
                                        std::int64_t now) {
  HarvestResult result;
  const std::string remote = normalize_address(sender);
  std::vector<std::string> expected_hashes;
  for (const auto& recipient : local_recipients) {
    expected_hashes.push_back(base64_unpadded(pair_hash(recipient, remote)));
  }
  for (const auto& field : fields) {
    if (field.name.size() != submission_token_field.size() ||
        normalize_address(field.name) != normalize_address(submission_token_field)) {
      continue;
    }
    ++result.fields;
    // The value is the token, possibly in angle brackets as the draft's
    // example writes it.
    std::string_view text = field.value;
    if (text.size() >= 2 && text.front() == '<' && text.back() == '>') {
      text = text.substr(1, text.size() - 2);
    }
    const auto parsed = parse_named_token(text);
    if (!parsed.token) {
      result.ignored.push_back("not a token in the named format: " + parsed.error);
      continue;
    }
    const TokenFields& token = parsed.token->fields;
    if (token.created + token.validity <= now) {
      result.ignored.push_back("expired");
      continue;
    }
    bool matched = false;
    for (std::size_t i = 0; i < local_recipients.size(); ++i) {
      if (token.hash != expected_hashes[i]) continue;
      matched = true;
      WalletToken wallet;
      wallet.local_address = normalize_address(local_recipients[i]);
      wallet.remote_address = remote;
      wallet.token = std::string(text);
      wallet.pair_hash = token.hash;
      wallet.created = token.created;
      wallet.expires = token.created + token.validity;
      wallet.permanent = false;
      wallet.source = "header";
      result.accepted.push_back(std::move(wallet));
    }
    if (!matched) result.ignored.push_back("hash matches no recipient with this sender");
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
