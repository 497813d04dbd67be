// ContactsFolderSync: a TokenStore that forwards every call to the real
// store and keeps each affected user's COI/Contacts folder in step with it
// (rfcdraft "Contact Storage in COI"; COI client spec "Contact Storage
// Messages"), so that the user's COI clients see the tokens the server holds.
//
// After a write that changes a pair's tokens (add_issued, delete_issued,
// put_wallet, delete_wallet, and remove_expired for the pairs it drops), the
// contact message of that pair is brought in line with the store, in the
// folder ROOT/domain/local/.COI.Contacts (maildir_layout.h):
//   - the contact's message is the one whose COI-From-Hash lists the remote
//     address (several such messages are merged into one: the spec's rule
//     for duplicates);
//   - its COI-TokenIn fields become the pair's unexpired permanent tokens
//     this server issued (temporary tokens are stateless: nothing to
//     mirror), its COI-TokenOut fields the unexpired wallet tokens, one per
//     pair hash, of every address the message lists;
//   - a message a client wrote keeps everything else (body, other fields);
//     a contact without a message gets a new one from the store's data; a
//     message stokend wrote and nobody changed is removed once its contact
//     has no tokens left; a message already in step is not touched.
// Changes are written as a new file and the old one removed
// (contacts_folder.h), under the folder's lock, reading the store under the
// lock, so concurrent writers (worker threads, stokenctl) leave the newest
// state. Only users whose mail is in the built-in Maildir store are synced:
// `mailbox_of` answers nullopt for everyone else (lmtp, smtp routes).
//
// Contract: the store calls behave exactly as the inner store's (same
// results, same TokenStoreError); the folder update runs after a successful
// write on the calling thread (the daemon writes tokens on worker threads),
// never throws, and logs a failure (naming user and contact, never a
// token) without undoing the store write: the store is the truth, the
// folder a mirror that the next change of the pair repairs. Thread-safe if
// `mailbox_of` is.
#pragma once

#include <cstdint>
#include <filesystem>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

#include "mta/store/maildir_layout.h"
#include "tokens/token_store.h"

namespace stokend::store {

class ContactsFolderSync : public tokens::TokenStore {
 public:
  // The user's mailbox (ROOT/domain/local) when the user's mail is in the
  // built-in Maildir store, else nullopt.
  using MailboxOf =
      std::function<std::optional<std::filesystem::path>(std::string_view local_address)>;
  using Clock = std::function<std::int64_t()>;  // unix seconds

  // hostname: part of new file names and Message-IDs.
  ContactsFolderSync(std::unique_ptr<tokens::TokenStore> inner, MailboxOf mailbox_of,
                     std::string hostname, Clock clock = system_clock);
  static std::int64_t system_clock();

  // Owner and modes of the folders and files it creates (the
  // configuration's `maildir:` section); default: the process's, 0700/0600.
  void set_maildir_permissions(const MaildirPermissions& permissions) {
    permissions_ = permissions;
  }

  void add_issued(const tokens::IssuedToken& token) override;
  std::optional<tokens::IssuedToken> find_issued(std::string_view token) override;
  std::optional<tokens::IssuedToken> newest_issued(std::string_view pair_hash,
                                                   std::int64_t now) override;
  std::size_t delete_issued(std::string_view pair_hash) override;
  std::vector<tokens::IssuedToken> list_issued(std::string_view local_address) override;

  void set_revocation_mark(std::string_view pair_hash, std::int64_t revoked_through) override;
  std::optional<std::int64_t> revocation_mark(std::string_view pair_hash) override;

  bool put_wallet(const tokens::WalletToken& token) override;
  std::optional<tokens::WalletToken> find_wallet(std::string_view local_address,
                                                 std::string_view remote_address) override;
  bool delete_wallet(std::string_view local_address, std::string_view remote_address,
                     std::string_view token) override;
  std::vector<tokens::WalletToken> list_wallet(std::string_view local_address) override;

  std::size_t remove_expired(std::int64_t now, std::int64_t oldest_mark_worth_keeping) override;

  // Brings the contact message of (local, remote) in line with the store
  // now. Returns what went wrong, or an empty string. Never throws.
  std::string sync_contact(std::string_view local_address, std::string_view remote_address);

 private:
  struct Desired;
  Desired desired_tokens(const std::string& local, const std::vector<std::string>& hashes,
                         std::int64_t now);
  std::string sync_unlogged(const std::string& local, const std::string& remote);
  void sync_and_log(std::string_view local_address, std::string_view remote_address) noexcept;

  std::unique_ptr<tokens::TokenStore> inner_;
  MailboxOf mailbox_of_;
  std::string host_for_file_names_;
  MaildirPermissions permissions_;
  std::string hostname_;
  Clock clock_;
};

}  // namespace stokend::store
