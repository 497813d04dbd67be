// Mirroring the token store into COI/Contacts folders; see
// contacts_folder_sync.h.
#include "mta/store/contacts_folder_sync.h"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <chrono>
#include <exception>
#include <set>
#include <utility>

#include "mta/store/contacts_folder.h"
#include "mta/store/maildir_layout.h"
#include "tokens/coi_contact_message.h"
#include "tokens/pair_hash.h"

namespace stokend::store {
namespace {

namespace fs = std::filesystem;

template <typename Items, typename Item>
bool contains(const Items& items, const Item& item) {
  return std::find(items.begin(), items.end(), item) != items.end();
}

void add_unique(std::vector<std::string>& items, const std::string& item) {
  if (!contains(items, item)) items.push_back(item);
}

std::vector<std::string> sorted(std::vector<std::string> items) {
  std::sort(items.begin(), items.end());
  return items;
}

// A message of the folder that lists the contact.
struct StoredContact {
  MaildirMessage file;
  tokens::ContactMessage contact;
  bool plain = false;  // written by stokend, changed by nobody
};

// The copy whose other fields and body survive a merge: one a client wrote
// (it holds the user's data) before one stokend wrote, then the newest.
const StoredContact& base_of(const std::vector<StoredContact>& group) {
  return *std::min_element(group.begin(), group.end(), [](const auto& a, const auto& b) {
    if (a.plain != b.plain) return !a.plain;
    if (a.file.modified_nanoseconds != b.file.modified_nanoseconds) {
      return a.file.modified_nanoseconds > b.file.modified_nanoseconds;
    }
    return a.file.path.filename() > b.file.path.filename();
  });
}

}  // namespace

// The tokens the contact's message should carry.
struct ContactsFolderSync::Desired {
  std::vector<std::string> tokens_in;
  std::vector<std::string> tokens_out;
  std::vector<std::string> addresses;  // the contact's addresses the store knows
  bool empty() const { return tokens_in.empty() && tokens_out.empty(); }
};

ContactsFolderSync::ContactsFolderSync(std::unique_ptr<tokens::TokenStore> inner,
                                       MailboxOf mailbox_of, std::string hostname, Clock clock)
    : inner_(std::move(inner)),
      mailbox_of_(std::move(mailbox_of)),
      host_for_file_names_(sanitise_hostname_for_file_names(hostname)),
      hostname_(std::move(hostname)),
      clock_(std::move(clock)) {}

std::int64_t ContactsFolderSync::system_clock() {
  return std::chrono::duration_cast<std::chrono::seconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

void ContactsFolderSync::add_issued(const tokens::IssuedToken& token) {
  inner_->add_issued(token);
  sync_and_log(token.local_address, token.remote_address);
}

std::optional<tokens::IssuedToken> ContactsFolderSync::find_issued(std::string_view token) {
  return inner_->find_issued(token);
}

std::optional<tokens::IssuedToken> ContactsFolderSync::newest_issued(std::string_view pair_hash,
                                                                     std::int64_t now) {
  return inner_->newest_issued(pair_hash, now);
}

std::size_t ContactsFolderSync::delete_issued(std::string_view pair_hash) {
  // The pair behind the hash, read before its rows go: any of its tokens,
  // expired or not, names it.
  const auto any = inner_->newest_issued(pair_hash, 0);
  const std::size_t deleted = inner_->delete_issued(pair_hash);
  if (deleted > 0 && any) sync_and_log(any->local_address, any->remote_address);
  return deleted;
}

std::vector<tokens::IssuedToken> ContactsFolderSync::list_issued(std::string_view local_address) {
  return inner_->list_issued(local_address);
}

void ContactsFolderSync::set_revocation_mark(std::string_view pair_hash,
                                             std::int64_t revoked_through) {
  // Marks kill temporary tokens, which are never mirrored.
  inner_->set_revocation_mark(pair_hash, revoked_through);
}

std::optional<std::int64_t> ContactsFolderSync::revocation_mark(std::string_view pair_hash) {
  return inner_->revocation_mark(pair_hash);
}

bool ContactsFolderSync::put_wallet(const tokens::WalletToken& token) {
  const bool stored = inner_->put_wallet(token);
  if (stored) sync_and_log(token.local_address, token.remote_address);
  return stored;
}

std::optional<tokens::WalletToken> ContactsFolderSync::find_wallet(
    std::string_view local_address, std::string_view remote_address) {
  return inner_->find_wallet(local_address, remote_address);
}

bool ContactsFolderSync::delete_wallet(std::string_view local_address,
                                       std::string_view remote_address, std::string_view token) {
  const bool deleted = inner_->delete_wallet(local_address, remote_address, token);
  if (deleted) sync_and_log(local_address, remote_address);
  return deleted;
}

std::vector<tokens::WalletToken> ContactsFolderSync::list_wallet(std::string_view local_address) {
  return inner_->list_wallet(local_address);
}

std::size_t ContactsFolderSync::remove_expired(std::int64_t now,
                                               std::int64_t oldest_mark_worth_keeping) {
  // The pairs losing tokens, found before they go; this runs hourly on a
  // worker thread, so reading every row is affordable.
  std::set<std::pair<std::string, std::string>> pairs;
  for (const tokens::IssuedToken& token : inner_->list_issued("")) {
    if (token.expires <= now) pairs.emplace(token.local_address, token.remote_address);
  }
  for (const tokens::WalletToken& token : inner_->list_wallet("")) {
    if (token.expires <= now) pairs.emplace(token.local_address, token.remote_address);
  }
  const std::size_t removed = inner_->remove_expired(now, oldest_mark_worth_keeping);
  for (const auto& [local, remote] : pairs) sync_and_log(local, remote);
  return removed;
}

ContactsFolderSync::Desired ContactsFolderSync::desired_tokens(
    const std::string& local, const std::vector<std::string>& hashes, std::int64_t now) {
  Desired desired;
  std::vector<tokens::IssuedToken> issued;
  for (tokens::IssuedToken& token : inner_->list_issued(local)) {
    if (token.expires > now && contains(hashes, tokens::coi_from_hash_hex(token.remote_address))) {
      add_unique(desired.addresses, token.remote_address);
      issued.push_back(std::move(token));
    }
  }
  std::sort(issued.begin(), issued.end(), [](const auto& a, const auto& b) {
    return a.created != b.created ? a.created < b.created : a.token < b.token;
  });
  for (const auto& token : issued) desired.tokens_in.push_back(token.token);
  // The wallet holds one token per (local, remote), so one per pair hash.
  for (const tokens::WalletToken& token : inner_->list_wallet(local)) {
    if (token.expires > now && contains(hashes, tokens::coi_from_hash_hex(token.remote_address))) {
      add_unique(desired.addresses, token.remote_address);
      desired.tokens_out.push_back(token.token);
    }
  }
  return desired;
}

std::string ContactsFolderSync::sync_unlogged(const std::string& local, const std::string& remote) {
  const auto mailbox = mailbox_of_(local);
  if (!mailbox) return {};  // not a user of the built-in Maildir store
  const fs::path folder = *mailbox / contacts_folder_name;
  const std::string hash = tokens::coi_from_hash_hex(remote);
  const std::int64_t now = clock_();

  // No folder and nothing to write: no folder is created.
  if (!is_maildir(folder) && desired_tokens(local, {hash}, now).empty()) return {};
  // Completed when a client made only part of it (no tmp/, no marker).
  if (auto made = make_subfolder(*mailbox, contacts_folder_name, permissions_); !made) {
    return folder.string() + ": cannot create (" + made.step + "): " + made.error.message();
  }
  std::string error;
  const UniqueFd lock = lock_folder(folder, error);
  if (!lock) return error;

  // Under the lock: the folder and the store as they are now, so the last
  // writer to get here writes the newest state.
  MaildirRead read = read_maildir_messages(folder);
  for (const std::string& problem : read.problems) {
    spdlog::warn("contacts folder of {}: {}", local, problem);
  }
  std::vector<StoredContact> group;
  for (MaildirMessage& file : read.messages) {
    auto parsed = tokens::parse_contact_message(file.text);
    if (!parsed.contact || !contains(parsed.contact->from_hashes, hash)) continue;
    const bool plain = tokens::is_plain_rendering(file.text);
    group.push_back(StoredContact{std::move(file), std::move(*parsed.contact), plain});
  }
  std::vector<std::string> hashes;
  if (!group.empty()) hashes = base_of(group).contact.from_hashes;
  for (const StoredContact& stored : group) {
    for (const std::string& other : stored.contact.from_hashes) add_unique(hashes, other);
  }
  add_unique(hashes, hash);
  const Desired desired = desired_tokens(local, hashes, now);

  if (group.empty()) {
    if (desired.empty()) return {};
    tokens::ContactContent content{local, {remote}, {}, desired.tokens_in, desired.tokens_out};
    for (const std::string& address : desired.addresses) add_unique(content.addresses, address);
    const std::string text = tokens::render_contact_message(content, now, hostname_);
    const ReplaceResult written =
        replace_messages(folder, host_for_file_names_, text, "S", {}, permissions_);
    if (!written) return written.error;
    spdlog::info("contacts folder of {}: contact {} added ({} TokenIn, {} TokenOut)", local, remote,
                 desired.tokens_in.size(), desired.tokens_out.size());
    return {};
  }

  const StoredContact& base = base_of(group);
  if (group.size() == 1 && sorted(base.contact.tokens_in) == sorted(desired.tokens_in) &&
      sorted(base.contact.tokens_out) == sorted(desired.tokens_out) &&
      base.contact.from_hashes.size() == hashes.size()) {
    return {};  // in step already
  }
  std::vector<fs::path> replaced;
  for (const StoredContact& stored : group) replaced.push_back(stored.file.path);
  const bool all_plain = std::all_of(group.begin(), group.end(),
                                     [](const StoredContact& stored) { return stored.plain; });
  std::string text;
  if (!desired.empty() || !all_plain) {
    text = tokens::replace_contact_fields(base.file.text, hashes, desired.tokens_in,
                                          desired.tokens_out);
  }
  const std::string flags =
      base.file.path.parent_path().filename() == "cur" ? maildir_flags(base.file.path) : "S";
  const ReplaceResult written =
      replace_messages(folder, host_for_file_names_, text, flags, replaced, permissions_);
  if (!written) return written.error;
  if (text.empty()) {
    spdlog::info("contacts folder of {}: contact {} removed (no tokens left)", local, remote);
  } else {
    spdlog::info("contacts folder of {}: contact {} updated ({} TokenIn, {} TokenOut{})", local,
                 remote, desired.tokens_in.size(), desired.tokens_out.size(),
                 group.size() > 1 ? ", " + std::to_string(group.size()) + " copies merged" : "");
  }
  return {};
}

std::string ContactsFolderSync::sync_contact(std::string_view local_address,
                                             std::string_view remote_address) {
  try {
    return sync_unlogged(tokens::normalize_address(local_address),
                         tokens::normalize_address(remote_address));
  } catch (const std::exception& error) {
    return error.what();
  }
}

void ContactsFolderSync::sync_and_log(std::string_view local_address,
                                      std::string_view remote_address) noexcept {
  try {
    const std::string error = sync_contact(local_address, remote_address);
    if (!error.empty()) {
      spdlog::error("contacts folder of {}: contact {} not updated: {}", local_address,
                    remote_address, error);
    }
  } catch (...) {
    // Logging itself failed (out of memory): the store write stands.
  }
}

}  // namespace stokend::store
