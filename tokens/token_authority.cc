// Minting, verifying and revoking this server's tokens; see token_authority.h.
//
// A token names the secret that made its MAC in its "keyid" option, and ids
// are unique across both rings, so verification computes one MAC, and the
// ring holding the id says whether the token is temporary or permanent: a
// token cannot pass for the other kind, since its MAC would then have to be
// made with a secret of the other ring.
#include "tokens/token_authority.h"

#include <algorithm>
#include <atomic>
#include <vector>

#include "common/base64.h"
#include "tokens/mac.h"
#include "tokens/pair_hash.h"
#include "tokens/pair_hash_fast.h"
#include "tokens/time_text.h"
#include "tokens/token_format.h"
#include "tokens/token_metrics.h"
#include "tokens/token_scan.h"

namespace stokend::tokens {
namespace {

constexpr std::string_view key_id_option = "keyid";
// How often a token naming an unknown secret may make the authority look
// at the secrets file again (SecretRings::refresh_if_changed).
constexpr std::chrono::milliseconds unknown_key_recheck{50};

std::string pair_hash_text(std::string_view remote_address, std::string_view local_address) {
  return base64_unpadded(pair_hash(remote_address, local_address));
}

}  // namespace

struct TokenAuthority::MacKeys {
  struct Key {
    const Secret* secret;
    HmacSha256Key mac;
  };

  explicit MacKeys(std::shared_ptr<const SecretRings::Snapshot> source)
      : snapshot(std::move(source)) {
    keys.reserve(snapshot->secrets.size());
    for (const Secret& secret : snapshot->secrets) {
      keys.push_back(Key{&secret, HmacSha256Key(secret.key)});
    }
  }

  const Key* find(std::string_view id) const {
    for (const Key& key : keys) {
      if (key.secret->id == id) return &key;
    }
    return nullptr;
  }

  std::shared_ptr<const SecretRings::Snapshot> snapshot;  // owns the secrets keys point to
  std::vector<Key> keys;
};

std::string_view verdict_name(TokenVerdict verdict) {
  switch (verdict) {
    case TokenVerdict::valid:
      return "valid";
    case TokenVerdict::malformed:
      return "malformed";
    case TokenVerdict::forged:
      return "forged";
    case TokenVerdict::not_yet_valid:
      return "not_yet_valid";
    case TokenVerdict::expired:
      return "expired";
    case TokenVerdict::revoked:
      return "revoked";
    case TokenVerdict::unknown_permanent:
      return "unknown_permanent";
    case TokenVerdict::wrong_pair:
      return "wrong_pair";
  }
  return "unknown";
}

TokenAuthority::TokenAuthority(const SecretRings& rings, TokenStore& store, TokenPolicy policy,
                               Clock clock)
    : rings_(rings), store_(store), policy_(policy), clock_(std::move(clock)) {}

std::int64_t TokenAuthority::system_clock() {
  return std::chrono::duration_cast<std::chrono::seconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

std::shared_ptr<const TokenAuthority::MacKeys> TokenAuthority::mac_keys() const {
  std::shared_ptr<const SecretRings::Snapshot> snapshot = rings_.snapshot();
  std::shared_ptr<const MacKeys> keys = std::atomic_load(&mac_keys_);
  if (keys && keys->snapshot == snapshot) return keys;
  // Two threads may both build them after a reload; either result is right.
  keys = std::make_shared<const MacKeys>(std::move(snapshot));
  std::atomic_store(&mac_keys_, keys);
  return keys;
}

std::string TokenAuthority::mint(TokenKind kind, std::string_view remote_address,
                                 std::string_view local_address, std::int64_t created) const {
  const std::shared_ptr<const MacKeys> keys = mac_keys();
  const MacKeys::Key* key = keys->find(keys->snapshot->active(kind).id);
  TokenFields fields;
  fields.created = created;
  fields.validity =
      (kind == TokenKind::temporary ? policy_.temporary_validity : policy_.permanent_validity)
          .count();
  fields.hash = pair_hash_text(remote_address, local_address);
  fields.options.emplace_back(key_id_option, key->secret->id);
  std::string text = emit_signed_part(fields);
  const MacValue mac = key->mac.compute(text);
  text += "-secret:";
  text += base64_unpadded(mac);
  return text;
}

std::string TokenAuthority::mint_temporary(std::string_view remote_address,
                                           std::string_view local_address) {
  std::int64_t created = clock_();
  // The mark means "created at or before it is invalid": a token minted in
  // the same second as a REVSTOKEN takes the next second.
  if (const auto mark = store_.revocation_mark(pair_hash_text(remote_address, local_address))) {
    created = std::max(created, *mark + 1);
  }
  return mint(TokenKind::temporary, remote_address, local_address, created);
}

std::string TokenAuthority::permanent_for(std::string_view remote_address,
                                          std::string_view local_address) {
  const std::string hash = pair_hash_text(remote_address, local_address);
  const std::int64_t now = clock_();
  if (const auto existing = store_.newest_issued(hash, now)) {
    // A token inside its renewal window is not handed out again: the pair
    // gets one new token, and every later exchange returns that one
    // (rfcdraft/ "Delivery"). A stored token whose secret was removed from
    // the rings by hand would be refused when used; it is replaced too.
    // The same boundary as TokenCheck::renew_due: renewal is due with less
    // than renew_before left.
    if (existing->expires - now >= policy_.renew_before.count() &&
        check_unbound(existing->token).valid()) {
      return existing->token;
    }
  }
  return renew_permanent(remote_address, local_address);
}

std::string TokenAuthority::renew_permanent(std::string_view remote_address,
                                            std::string_view local_address) {
  // A token's text is a function of (created, validity, hash, keyid): a new
  // token minted in the same second as a revoked or an older one would be
  // that same token again. So it takes a second after both the pair's
  // revocation mark and its newest issued token.
  const std::string hash = pair_hash_text(remote_address, local_address);
  std::int64_t created = clock_();
  if (const auto mark = store_.revocation_mark(hash)) created = std::max(created, *mark + 1);
  if (const auto newest = store_.newest_issued(hash, 0)) {
    created = std::max(created, newest->created + 1);
  }
  std::string token = mint(TokenKind::permanent, remote_address, local_address, created);
  store_.add_issued(IssuedToken{token, normalize_address(local_address),
                                normalize_address(remote_address),
                                pair_hash_text(remote_address, local_address), created,
                                created + policy_.permanent_validity.count()});
  return token;
}

TokenCheck TokenAuthority::verify(std::string_view token, std::string_view remote_address,
                                  std::string_view local_address) const {
  TokenCheck check = check_unbound(token);
  if (check.valid() && !pair_matches(check, remote_address, local_address)) {
    check.verdict = TokenVerdict::wrong_pair;
    check.reason = "hash does not match sender and recipient";
    check.renew_due = false;
  }
  count_verification(check.verdict);
  return check;
}

TokenCheck TokenAuthority::verify_unbound(std::string_view token) const {
  TokenCheck check = check_unbound(token);
  count_verification(check.verdict);
  return check;
}

TokenCheck TokenAuthority::check_unbound(std::string_view token) const {
  TokenCheck check;
  // Read in place rather than with parse_named_token(): no copies of the
  // fields, since this runs for every RCPT with STOKEN=.
  NamedTokenScan fields;
  if (std::string error = scan_named_token(token, fields); !error.empty()) {
    check.verdict = TokenVerdict::malformed;
    check.reason = std::move(error);
    return check;
  }
  check.created = fields.created;
  check.expires = fields.created + fields.validity;
  check.hash = fields.hash;

  check.verdict = TokenVerdict::forged;
  if (!fields.key_id) {
    check.reason = "no keyid";
    return check;
  }
  check.key_id = *fields.key_id;
  std::shared_ptr<const MacKeys> keys = mac_keys();
  const MacKeys::Key* key = keys->find(*fields.key_id);
  // A secret another node already mints with (the operator rotated and
  // distributed the file): the file may have changed since this node last
  // looked, so look now rather than at the next session start. At most
  // one stat(2) per unknown_key_recheck, whatever the rate of forged ids.
  if (key == nullptr && rings_.refresh_if_changed(unknown_key_recheck)) {
    keys = mac_keys();
    key = keys->find(*fields.key_id);
  }
  if (key == nullptr) {
    check.reason = "unknown keyid '" + check.key_id + "'";
    return check;
  }
  const auto mac = decode_base64_32(fields.secret);
  if (!mac) {
    check.reason = "secret is not a MAC (32 octets in base64)";
    return check;
  }
  if (!key->mac.verify(token.substr(0, fields.signed_length), *mac)) {
    check.reason = "MAC does not match";
    return check;
  }
  const TokenKind kind = key->secret->kind;
  check.kind = kind;

  const std::int64_t now = clock_();
  if (fields.created - now > policy_.clock_skew.count()) {
    check.verdict = TokenVerdict::not_yet_valid;
    check.reason = "created " + duration_in_words(fields.created - now) +
                   " in the future, more than the allowed clock skew of " +
                   duration_in_words(policy_.clock_skew.count());
    return check;
  }
  if (now >= check.expires) {
    check.verdict = TokenVerdict::expired;
    check.reason = now == check.expires
                       ? "expired just now"
                       : "expired " + duration_in_words(now - check.expires) + " ago";
    return check;
  }
  if (kind == TokenKind::temporary) {
    const auto mark = store_.revocation_mark(fields.hash);
    if (mark && fields.created <= *mark) {
      check.verdict = TokenVerdict::revoked;
      check.reason =
          "created before the pair's revocation mark (revoked through " + iso8601_utc(*mark) + ")";
      return check;
    }
  } else {
    if (!store_.find_issued(token)) {
      check.verdict = TokenVerdict::unknown_permanent;
      check.reason = "not in the token store";
      return check;
    }
    check.renew_due = check.expires - now < policy_.renew_before.count();
  }
  check.verdict = TokenVerdict::valid;
  // Short, and without the time left: building words costs more than the
  // rest of a verification, and stokenctl prints the times itself.
  check.reason = check.renew_due ? "valid, due for renewal" : "valid";
  return check;
}

bool TokenAuthority::pair_matches(const TokenCheck& check, std::string_view remote_address,
                                  std::string_view local_address) {
  // Compared as digests: decoding the token's field is cheaper than
  // encoding the computed hash, and this runs for every token verified.
  const auto hash = decode_base64_32(check.hash);
  return hash && *hash == pair_hash_fast(remote_address, local_address);
}

void TokenAuthority::revoke(std::string_view remote_address, std::string_view local_address) {
  const std::string hash = pair_hash_text(remote_address, local_address);
  store_.set_revocation_mark(hash, clock_());
  store_.delete_issued(hash);
}

}  // namespace stokend::tokens
