// Importing the tokens of COI contact storage messages into the token store
// (rfcdraft "Contact Storage in COI"; COI client spec "Merging Contact
// Storage Messages").
//
// Each token is checked before anything is written:
//   TokenOut (a token the contact's server gave our user): the named format
//     (a positional token's pair cannot be checked), not expired, created
//     at most the clock skew in the future, and its pair hash
//     SHA3-256(norm(user) ":" norm(contact)) for one of the contact's
//     addresses. It goes into the user's wallet (source "import").
//   TokenIn (a token this server gave the contact): our own verification
//     (MAC, lifetime, revocation mark; TokenAuthority::verify_unbound) and
//     the pair (contact, user). Temporary tokens are stateless and permanent
//     ones already in the store need nothing; a permanent token missing from
//     the store is restored only when asked (restore_issued) and only when no
//     revocation mark covers it: a missing token may have been revoked long
//     enough ago that its mark is gone, so restoring is the operator's call.
// The contact's addresses are those in the message body whose hash is a
// COI-From-Hash, and those the store already knows for the user (wallet or
// issued) whose hash is: so a contact with an encrypted body still matches
// when the server has dealt with that contact before.
//
// Merge: within the import, per user, the TokenOut with the newest created
// time per pair hash wins; against the store, TokenStore::put_wallet keeps
// the newer token; every unexpired TokenIn is kept. An entry that fails is
// skipped with its reason; one bad entry or message never stops the rest.
//
// Contract: plan_contact_import() only reads the store; apply_contact_import()
// writes the plan, entry by entry (each write is idempotent, so an import
// interrupted by a store failure can simply be run again). Reports name
// pairs, kinds and created times, never a token's text. Never throws except
// TokenStoreError from the store.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "tokens/token_authority.h"
#include "tokens/token_store.h"

namespace stokend::tokens {

// One message to import, with the name it is reported under (a file).
struct ContactSource {
  std::string name;
  std::string text;
};

struct ContactImportOptions {
  std::int64_t now = 0;
  std::chrono::seconds clock_skew{std::chrono::hours(24)};
  // The user the contacts belong to; when empty, each message's To (else
  // From) names it.
  std::optional<std::string> user;
  // Whether an address is a local user; unset: every address is.
  std::function<bool(std::string_view)> is_local_user;
  // Restore permanent TokenIn entries missing from the store (see above).
  bool restore_issued = false;
};

// One line of the import report.
struct ContactImportNote {
  std::string source;  // the message it came from
  // "TokenOut 1 (alice@a.test -> bob@b.test, created 2026-...)", "message"
  // or "field": which entry, and the way mail goes with it.
  std::string what;
  std::string reason;  // why it was skipped, or what was found
};

// A write the plan makes, with the line that reports it.
template <typename Token>
struct PlannedEntry {
  Token token;
  ContactImportNote note;
};

struct ContactImportPlan {
  std::size_t messages = 0;                       // contact storage messages read
  std::vector<PlannedEntry<WalletToken>> wallet;  // TokenOut into wallets
  std::vector<PlannedEntry<IssuedToken>> issued;  // permanent TokenIn to restore
  std::vector<ContactImportNote> unchanged;       // valid and already known (or stateless)
  std::vector<ContactImportNote> skipped;         // invalid, superseded, or not a contact
};

ContactImportPlan plan_contact_import(const std::vector<ContactSource>& sources,
                                      const TokenAuthority& authority, TokenStore& store,
                                      const ContactImportOptions& options);

struct ContactImportResult {
  std::size_t wallet_added = 0;
  std::size_t issued_restored = 0;
  std::vector<ContactImportNote> imported;   // written
  std::vector<ContactImportNote> unchanged;  // the store kept a newer token meanwhile
};

ContactImportResult apply_contact_import(const ContactImportPlan& plan, TokenStore& store);

}  // namespace stokend::tokens
