// FakeTokenStore: an in-memory TokenStore for unit tests of code that mints,
// verifies or harvests tokens.
//
// Contract: behaves like SqliteTokenStore (same replacement rule for the
// wallet, same "later mark wins", addresses normalised) behind one mutex, so
// it may be used from several threads; nothing survives the object.
// fail_next() makes the next N calls throw TokenStoreError, to test how
// callers handle a store that is down. Counters tell how often it was asked.
#pragma once

#include <algorithm>
#include <cstddef>
#include <map>
#include <mutex>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "tokens/pair_hash.h"
#include "tokens/token_store.h"

namespace stokend::tokens {

class FakeTokenStore : public TokenStore {
 public:
  void add_issued(const IssuedToken& token) override {
    std::lock_guard lock(mutex_);
    maybe_fail();
    IssuedToken stored = token;
    stored.local_address = normalize_address(token.local_address);
    stored.remote_address = normalize_address(token.remote_address);
    issued_[stored.token] = std::move(stored);
  }

  std::optional<IssuedToken> find_issued(std::string_view token) override {
    std::lock_guard lock(mutex_);
    maybe_fail();
    ++issued_lookups_;
    const auto found = issued_.find(std::string(token));
    if (found == issued_.end()) return std::nullopt;
    return found->second;
  }

  std::optional<IssuedToken> newest_issued(std::string_view pair_hash, std::int64_t now) override {
    std::lock_guard lock(mutex_);
    maybe_fail();
    const IssuedToken* newest = nullptr;
    for (const auto& [text, token] : issued_) {
      if (token.pair_hash == pair_hash && token.expires > now &&
          (newest == nullptr || token.created > newest->created)) {
        newest = &token;
      }
    }
    if (newest == nullptr) return std::nullopt;
    return *newest;
  }

  std::size_t delete_issued(std::string_view pair_hash) override {
    std::lock_guard lock(mutex_);
    maybe_fail();
    return std::erase_if(issued_,
                         [&](const auto& entry) { return entry.second.pair_hash == pair_hash; });
  }

  std::vector<IssuedToken> list_issued(std::string_view local_address) override {
    std::lock_guard lock(mutex_);
    maybe_fail();
    const std::string local = normalize_address(local_address);
    std::vector<IssuedToken> tokens;
    for (const auto& [text, token] : issued_) {
      if (local.empty() || token.local_address == local) tokens.push_back(token);
    }
    return tokens;
  }

  void set_revocation_mark(std::string_view pair_hash, std::int64_t revoked_through) override {
    std::lock_guard lock(mutex_);
    maybe_fail();
    auto [mark, inserted] = marks_.emplace(std::string(pair_hash), revoked_through);
    if (!inserted) mark->second = std::max(mark->second, revoked_through);
  }

  std::optional<std::int64_t> revocation_mark(std::string_view pair_hash) override {
    std::lock_guard lock(mutex_);
    maybe_fail();
    ++mark_lookups_;
    const auto found = marks_.find(std::string(pair_hash));
    if (found == marks_.end()) return std::nullopt;
    return found->second;
  }

  bool put_wallet(const WalletToken& token) override {
    std::lock_guard lock(mutex_);
    maybe_fail();
    WalletToken stored = token;
    stored.local_address = normalize_address(token.local_address);
    stored.remote_address = normalize_address(token.remote_address);
    const auto key = std::pair(stored.local_address, stored.remote_address);
    const auto existing = wallet_.find(key);
    if (existing != wallet_.end() && existing->second.created > stored.created) return false;
    wallet_[key] = std::move(stored);
    return true;
  }

  std::optional<WalletToken> find_wallet(std::string_view local_address,
                                         std::string_view remote_address) override {
    std::lock_guard lock(mutex_);
    maybe_fail();
    const auto found = wallet_.find(
        std::pair(normalize_address(local_address), normalize_address(remote_address)));
    if (found == wallet_.end()) return std::nullopt;
    return found->second;
  }

  bool delete_wallet(std::string_view local_address, std::string_view remote_address,
                     std::string_view token) override {
    std::lock_guard lock(mutex_);
    maybe_fail();
    const auto found = wallet_.find(
        std::pair(normalize_address(local_address), normalize_address(remote_address)));
    if (found == wallet_.end() || found->second.token != token) return false;
    wallet_.erase(found);
    return true;
  }

  std::vector<WalletToken> list_wallet(std::string_view local_address) override {
    std::lock_guard lock(mutex_);
    maybe_fail();
    const std::string local = normalize_address(local_address);
    std::vector<WalletToken> tokens;
    for (const auto& [key, token] : wallet_) {
      if (local.empty() || token.local_address == local) tokens.push_back(token);
    }
    return tokens;
  }

  std::size_t remove_expired(std::int64_t now, std::int64_t oldest_mark_worth_keeping) override {
    std::lock_guard lock(mutex_);
    maybe_fail();
    return std::erase_if(issued_, [&](const auto& entry) { return entry.second.expires <= now; }) +
           std::erase_if(wallet_, [&](const auto& entry) { return entry.second.expires <= now; }) +
           std::erase_if(
               marks_, [&](const auto& entry) { return entry.second < oldest_mark_worth_keeping; });
  }

  // The next `count` calls throw TokenStoreError.
  void fail_next(std::size_t count) {
    std::lock_guard lock(mutex_);
    failures_left_ = count;
  }

  std::size_t issued_lookups() const {
    std::lock_guard lock(mutex_);
    return issued_lookups_;
  }
  std::size_t mark_lookups() const {
    std::lock_guard lock(mutex_);
    return mark_lookups_;
  }

 private:
  void maybe_fail() {
    if (failures_left_ == 0) return;
    --failures_left_;
    throw TokenStoreError("fake token store: simulated failure");
  }

  mutable std::mutex mutex_;
  std::map<std::string, IssuedToken> issued_;                          // by token text
  std::map<std::string, std::int64_t> marks_;                          // by pair hash
  std::map<std::pair<std::string, std::string>, WalletToken> wallet_;  // by (local, remote)
  std::size_t failures_left_ = 0;
  std::size_t issued_lookups_ = 0;
  std::size_t mark_lookups_ = 0;
};

}  // namespace stokend::tokens
