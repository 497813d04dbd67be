// Checking and merging the tokens of contact storage messages; see
// coi_contact_import.h.
#include "tokens/coi_contact_import.h"

#include <algorithm>
#include <map>
#include <utility>

#include "tokens/coi_contact_message.h"
#include "tokens/pair_hash.h"
#include "tokens/time_text.h"
#include "tokens/token_format.h"

namespace stokend::tokens {
namespace {

template <typename Items, typename Item>
bool contains(const Items& items, const Item& item) {
  return std::find(items.begin(), items.end(), item) != items.end();
}

// The addresses the store knows for one user (wallet and issued), by their
// COI-From-Hash: the contact of a message with an encrypted body is still
// found when the server has dealt with it before.
using KnownAddresses = std::map<std::string, std::string>;  // hash hex -> address

KnownAddresses known_addresses(TokenStore& store, const std::string& user) {
  KnownAddresses known;
  for (const WalletToken& token : store.list_wallet(user)) {
    known.emplace(coi_from_hash_hex(token.remote_address), token.remote_address);
  }
  for (const IssuedToken& token : store.list_issued(user)) {
    known.emplace(coi_from_hash_hex(token.remote_address), token.remote_address);
  }
  return known;
}

// "TokenOut 2 (alice@a.test -> bob@b.test, created 2026-11-18T11:06:40Z)":
// which entry, the direction mail takes with it, and when it was made;
// never the token itself.
std::string describe(std::string_view kind, std::size_t index, const std::string& from,
                     const std::string& to, std::int64_t created) {
  std::string text = std::string(kind) + " " + std::to_string(index + 1);
  std::string details;
  if (!from.empty() || !to.empty()) {
    details = (from.empty() ? "?" : from) + " -> " + (to.empty() ? "?" : to);
  }
  if (created > 0) details += (details.empty() ? "" : ", ") + ("created " + iso8601_utc(created));
  return details.empty() ? text : text + " (" + details + ")";
}

struct Planner {
  const TokenAuthority& authority;
  TokenStore& store;
  const ContactImportOptions& options;
  ContactImportPlan plan;
  std::map<std::string, KnownAddresses> known_by_user;
  // The newest valid TokenOut per (user, pair hash) so far.
  std::map<std::pair<std::string, std::string>, PlannedEntry<WalletToken>> newest_out;
  std::vector<std::string> tokens_in_seen;

  void skip(const std::string& source, std::string what, std::string reason) {
    plan.skipped.push_back(ContactImportNote{source, std::move(what), std::move(reason)});
  }

  const KnownAddresses& known(const std::string& user) {
    auto found = known_by_user.find(user);
    if (found == known_by_user.end()) {
      found = known_by_user.emplace(user, known_addresses(store, user)).first;
    }
    return found->second;
  }

  void add(const ContactSource& source) {
    ContactParseResult parsed = parse_contact_message(source.text);
    if (!parsed.contact) {
      skip(source.name, "message", parsed.error);
      return;
    }
    ++plan.messages;
    const ContactMessage& contact = *parsed.contact;
    for (const std::string& problem : contact.problems) skip(source.name, "field", problem);

    std::string user;
    if (options.user) {
      user = normalize_address(*options.user);
    } else if (contact.user) {
      user = *contact.user;
    } else {
      skip(source.name, "message",
           "no user: neither To nor From holds an address (name the user explicitly)");
      return;
    }
    if (options.is_local_user && !options.is_local_user(user)) {
      skip(source.name, "message", user + " is not a local user");
      return;
    }
    std::vector<std::string> addresses = contact.addresses;
    for (const auto& [hash, address] : known(user)) {
      if (contains(contact.from_hashes, hash) && !contains(addresses, address)) {
        addresses.push_back(address);
      }
    }
    for (std::size_t i = 0; i < contact.tokens_out.size(); ++i) {
      add_token_out(source, i, contact.tokens_out[i], user, addresses);
    }
    for (std::size_t i = 0; i < contact.tokens_in.size(); ++i) {
      add_token_in(source, i, contact.tokens_in[i], user, addresses);
    }
  }

  static std::string no_pair_reason(const std::vector<std::string>& addresses,
                                    const std::string& user) {
    if (addresses.empty()) {
      return "no address of the contact is known (the body names none of its COI-From-Hash "
             "addresses, and the token store knows none): cannot tell whose token it is";
    }
    return "its pair hash belongs to neither " + user + " and any address of the contact";
  }

  void add_token_out(const ContactSource& source, std::size_t index, const std::string& text,
                     const std::string& user, const std::vector<std::string>& addresses) {
    const TokenParseResult parsed = parse_named_token(text);
    if (!parsed.token) {
      skip(source.name, describe("TokenOut", index, user, "", 0),
           parse_positional_token(text).token
               ? "in the positional form, whose pair cannot be checked"
               : "not a token in the named format: " + parsed.error);
      return;
    }
    const TokenFields& fields = parsed.token->fields;
    const std::int64_t expires = fields.created + fields.validity;
    std::string remote;
    for (const std::string& address : addresses) {
      if (base64_unpadded(pair_hash(user, address)) == fields.hash) {
        remote = address;
        break;
      }
    }
    std::string what = describe("TokenOut", index, user, remote, fields.created);
    if (expires <= options.now) {
      skip(source.name, what, "expired " + duration_in_words(options.now - expires) + " ago");
      return;
    }
    if (fields.created - options.now > options.clock_skew.count()) {
      skip(source.name, what,
           "created " + duration_in_words(fields.created - options.now) +
               " in the future, more than the allowed clock skew of " +
               duration_in_words(options.clock_skew.count()));
      return;
    }
    if (remote.empty()) {
      skip(source.name, what, no_pair_reason(addresses, user));
      return;
    }
    PlannedEntry<WalletToken> entry{
        WalletToken{user, remote, text, fields.hash, fields.created, expires, false, "import"},
        ContactImportNote{source.name, std::move(what), "into the wallet"}};
    const auto key = std::pair(user, fields.hash);
    auto existing = newest_out.find(key);
    if (existing == newest_out.end()) {
      newest_out.emplace(key, std::move(entry));
      return;
    }
    PlannedEntry<WalletToken>& kept = existing->second;
    if (kept.token.token == text) {
      plan.unchanged.push_back(ContactImportNote{source.name, entry.note.what,
                                                 "the same token is in " + kept.note.source});
      return;
    }
    // COI merge rule: the newest TokenOut per pair hash.
    if (fields.created > kept.token.created) std::swap(kept, entry);
    skip(entry.note.source, entry.note.what,
         "superseded by a newer TokenOut for the same pair (" + kept.note.what + " in " +
             kept.note.source + ")");
  }

  void add_token_in(const ContactSource& source, std::size_t index, const std::string& text,
                    const std::string& user, const std::vector<std::string>& addresses) {
    if (contains(tokens_in_seen, text)) return;  // listed by another message too
    tokens_in_seen.push_back(text);
    const TokenCheck check = authority.verify_unbound(text);
    if (check.verdict != TokenVerdict::valid && check.verdict != TokenVerdict::unknown_permanent) {
      skip(source.name, describe("TokenIn", index, "", user, check.created),
           std::string(verdict_name(check.verdict)) + ": " + check.reason);
      return;
    }
    std::string remote;
    for (const std::string& address : addresses) {
      if (TokenAuthority::pair_matches(check, address, user)) {
        remote = address;
        break;
      }
    }
    std::string what = describe("TokenIn", index, remote, user, check.created);
    if (remote.empty()) {
      skip(source.name, what, no_pair_reason(addresses, user));
      return;
    }
    if (check.valid()) {
      plan.unchanged.push_back(
          ContactImportNote{source.name, std::move(what),
                            check.kind == TokenKind::temporary
                                ? "valid temporary token: stateless, nothing to store"
                                : "valid permanent token, already in the token store"});
      return;
    }
    // unknown_permanent: our MAC, unexpired, but not in the store.
    if (!options.restore_issued) {
      skip(source.name, what,
           "permanent token missing from the token store (revoked, or lost with the store); "
           "restoring it was not asked for");
      return;
    }
    if (const auto mark = store.revocation_mark(check.hash); mark && check.created <= *mark) {
      skip(source.name, what,
           "revoked: created at or before the pair's revocation mark (" + iso8601_utc(*mark) + ")");
      return;
    }
    plan.issued.push_back(PlannedEntry<IssuedToken>{
        IssuedToken{text, user, remote, check.hash, check.created, check.expires},
        ContactImportNote{source.name, std::move(what), "restored to the token store"}});
  }

  // The winners of the TokenOut merge against what the wallets hold.
  void compare_with_wallets() {
    for (auto& [key, entry] : newest_out) {
      const auto stored = store.find_wallet(entry.token.local_address, entry.token.remote_address);
      if (stored && stored->token == entry.token.token) {
        plan.unchanged.push_back(
            ContactImportNote{entry.note.source, entry.note.what, "already in the wallet"});
      } else if (stored && stored->created >= entry.token.created &&
                 stored->expires > options.now) {
        plan.skipped.push_back(
            ContactImportNote{entry.note.source, entry.note.what,
                              "the wallet holds a token for this pair created no earlier (" +
                                  iso8601_utc(stored->created) + ")"});
      } else {
        plan.wallet.push_back(std::move(entry));
      }
    }
  }
};

}  // namespace

ContactImportPlan plan_contact_import(const std::vector<ContactSource>& sources,
                                      const TokenAuthority& authority, TokenStore& store,
                                      const ContactImportOptions& options) {
  Planner planner{authority, store, options, {}, {}, {}, {}};
  for (const ContactSource& source : sources) planner.add(source);
  planner.compare_with_wallets();
  return std::move(planner.plan);
}

ContactImportResult apply_contact_import(const ContactImportPlan& plan, TokenStore& store) {
  ContactImportResult result;
  for (const PlannedEntry<WalletToken>& entry : plan.wallet) {
    if (store.put_wallet(entry.token)) {
      ++result.wallet_added;
      result.imported.push_back(entry.note);
    } else {
      result.unchanged.push_back(
          ContactImportNote{entry.note.source, entry.note.what, "the wallet kept a newer token"});
    }
  }
  for (const PlannedEntry<IssuedToken>& entry : plan.issued) {
    // Checked again: the daemon may have stored it since the plan was made.
    if (store.find_issued(entry.token.token)) {
      result.unchanged.push_back(
          ContactImportNote{entry.note.source, entry.note.what, "already in the token store"});
      continue;
    }
    store.add_issued(entry.token);
    ++result.issued_restored;
    result.imported.push_back(entry.note);
  }
  return result;
}

}  // namespace stokend::tokens
