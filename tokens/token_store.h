// Where tokens live beyond their own text: permanent tokens this server
// issued (TokenIn), tokens other servers issued to local users (TokenOut, the
// wallet), and the revocation marks that kill stateless temporary tokens.
//
// Addresses are stored normalised (pair_hash.h normalize_address); pair
// hashes are base64 unpadded, as in the token's "hash" field.
//
// Contract: implementations are thread-safe (the daemon calls from the loop
// thread and from worker threads) and durable: when a write returns, it
// survives a crash. Failures throw TokenStoreError with a message that says
// what and where. The interface keeps to what a shared backend for several
// nodes can offer too: single-row writes and keyed reads, no transactions
// across calls.
#pragma once

#include <cstdint>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

namespace stokend::tokens {

class TokenStoreError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

struct IssuedToken {  // TokenIn
  std::string token;
  std::string local_address;   // our user the token delivers to
  std::string remote_address;  // who may use it
  std::string pair_hash;       // hash(remote ":" local)
  std::int64_t created = 0;
  std::int64_t expires = 0;
};

struct WalletToken {           // TokenOut
  std::string local_address;   // our user who may use it
  std::string remote_address;  // the remote user it delivers to
  std::string token;
  std::string pair_hash;  // as in the token: hash(local ":" remote), from the issuer's side
  std::int64_t created = 0;
  std::int64_t expires = 0;
  bool permanent = false;  // known to be permanent (from 2.1.13 or MYSTOKEN)
  std::string source;      // "header", "2.1.13", "MYSTOKEN", "import", "stokenctl"
};

class TokenStore {
 public:
  virtual ~TokenStore() = default;

  // TokenIn.
  virtual void add_issued(const IssuedToken& token) = 0;
  virtual std::optional<IssuedToken> find_issued(std::string_view token) = 0;
  // The newest unexpired issued token of the pair, if any.
  virtual std::optional<IssuedToken> newest_issued(std::string_view pair_hash,
                                                   std::int64_t now) = 0;
  // Deletes every issued token of the pair; returns how many.
  virtual std::size_t delete_issued(std::string_view pair_hash) = 0;
  // All issued tokens, or those of one local address when it is not empty.
  virtual std::vector<IssuedToken> list_issued(std::string_view local_address) = 0;

  // Revocation marks: a temporary token of the pair created at or before
  // `revoked_through` is invalid. Setting a mark keeps the later of the two.
  virtual void set_revocation_mark(std::string_view pair_hash, std::int64_t revoked_through) = 0;
  virtual std::optional<std::int64_t> revocation_mark(std::string_view pair_hash) = 0;

  // TokenOut. put_wallet keeps one token per (local, remote): the new one
  // replaces the stored one unless the stored one is newer (created later).
  // Returns true when the new token is now the stored one.
  virtual bool put_wallet(const WalletToken& token) = 0;
  virtual std::optional<WalletToken> find_wallet(std::string_view local_address,
                                                 std::string_view remote_address) = 0;
  // Deletes the entry only if it still holds this token (a newer one stays).
  virtual bool delete_wallet(std::string_view local_address, std::string_view remote_address,
                             std::string_view token) = 0;
  virtual std::vector<WalletToken> list_wallet(std::string_view local_address) = 0;

  // Drops issued and wallet tokens expired before `now`, and marks older than
  // any temporary token could be. Returns how many rows went.
  virtual std::size_t remove_expired(std::int64_t now, std::int64_t oldest_mark_worth_keeping) = 0;
};

}  // namespace stokend::tokens
