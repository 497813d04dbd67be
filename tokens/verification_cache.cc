// See verification_cache.h.
#include "tokens/verification_cache.h"

#include <time.h>

#include <algorithm>

#include "tokens/token_metrics.h"

namespace stokend::tokens {

VerificationCache::Clock::time_point VerificationCache::Clock::now() {
  timespec coarse{};
  ::clock_gettime(CLOCK_MONOTONIC_COARSE, &coarse);
  return time_point(std::chrono::seconds(coarse.tv_sec) + std::chrono::nanoseconds(coarse.tv_nsec));
}

std::chrono::nanoseconds VerificationCache::Clock::resolution() {
  timespec tick{};
  ::clock_getres(CLOCK_MONOTONIC_COARSE, &tick);
  return std::chrono::seconds(tick.tv_sec) + std::chrono::nanoseconds(tick.tv_nsec);
}

VerificationCache::VerificationCache(Options options)
    : options_(options),
      lifetime_(std::max(std::chrono::nanoseconds(0),
                         std::chrono::nanoseconds(options.max_age) - Clock::resolution())) {}

VerificationCache::Clock::time_point VerificationCache::deadline() const {
  return Clock::now() + lifetime_;
}

void VerificationCache::set_live() {
  std::lock_guard lock(mutex_);
  forget_all();
  ++sequence_;
  live_.store(true, std::memory_order_release);
  token_metrics().cache_subscribed->set(1);
}

void VerificationCache::set_stale() {
  std::lock_guard lock(mutex_);
  live_.store(false, std::memory_order_release);
  ++sequence_;
  forget_all();
  token_metrics().cache_subscribed->set(0);
}

void VerificationCache::invalidate(std::string_view pair_hash) {
  std::lock_guard lock(mutex_);
  ++sequence_;
  if (const auto mark = marks_.find(pair_hash); mark != marks_.end()) marks_.erase(mark);
  if (const auto tokens = pair_tokens_.find(pair_hash); tokens != pair_tokens_.end()) {
    for (const std::string& token : tokens->second) {
      if (const auto entry = issued_.find(token); entry != issued_.end()) issued_.erase(entry);
    }
    pair_tokens_.erase(tokens);
  }
}

void VerificationCache::forget_everything() {
  std::lock_guard lock(mutex_);
  ++sequence_;
  forget_all();
}

VerificationCache::Sequence VerificationCache::sequence() const {
  std::lock_guard lock(mutex_);
  return sequence_;
}

std::optional<VerificationCache::Mark> VerificationCache::mark(std::string_view pair_hash) const {
  if (!live()) return std::nullopt;
  std::lock_guard lock(mutex_);
  const auto entry = marks_.find(pair_hash);
  if (entry == marks_.end() || Clock::now() >= entry->second.until) return std::nullopt;
  return entry->second.value;
}

std::optional<VerificationCache::Issued> VerificationCache::issued(std::string_view token) const {
  if (!live()) return std::nullopt;
  std::lock_guard lock(mutex_);
  const auto entry = issued_.find(token);
  if (entry == issued_.end() || Clock::now() >= entry->second.until) return std::nullopt;
  return entry->second.value;
}

bool VerificationCache::accepts(Sequence read_at) const {
  return live_.load(std::memory_order_acquire) && read_at == sequence_;
}

void VerificationCache::make_room() {
  if (marks_.size() + issued_.size() >= options_.max_entries) forget_all();
}

void VerificationCache::forget_all() {
  marks_.clear();
  issued_.clear();
  pair_tokens_.clear();
}

void VerificationCache::insert_mark(Sequence read_at, std::string_view pair_hash, Mark value) {
  std::lock_guard lock(mutex_);
  if (!accepts(read_at)) return;
  make_room();
  marks_.insert_or_assign(std::string(pair_hash), Entry<Mark>{value, deadline()});
}

void VerificationCache::insert_issued(Sequence read_at, std::string_view token,
                                      std::string_view pair_hash, Issued value) {
  std::lock_guard lock(mutex_);
  if (!accepts(read_at)) return;
  make_room();
  const auto [entry, added] =
      issued_.insert_or_assign(std::string(token), Entry<Issued>{std::move(value), deadline()});
  if (added) pair_tokens_[std::string(pair_hash)].push_back(entry->first);
}

std::size_t VerificationCache::size() const {
  std::lock_guard lock(mutex_);
  return marks_.size() + issued_.size();
}

}  // namespace stokend::tokens
