// The token authority's metrics (common/metrics.h): tokens verified, by
// verdict (token_authority.h), as presented by Token Server clients (AUTH
// STOKEN, RCPT STOKEN=) and by anything else that asks the authority; and
// the Redis store's verification cache (verification_cache.h): its lookups
// by result and whether its change notifications are subscribed.
//
// Contract: token_metrics() registers stokend_token_verifications_total with
// one sample per verdict, stokend_token_cache_lookups_total per result and
// the gauge stokend_token_cache_subscribed the first time it is called and returns the same
// handles afterwards; count_verification() is one relaxed atomic add, safe
// on any thread.
#pragma once

#include <array>

#include "common/metrics.h"
#include "tokens/token_authority.h"

namespace stokend::tokens {

inline constexpr std::size_t verdict_count = 8;  // TokenVerdict's values

struct TokenMetrics {
  std::array<metrics::Counter*, verdict_count> verifications{};
  // hit: answered from memory; miss: read from Redis and kept; bypassed:
  // read from Redis because the subscription is down (or not yet up).
  metrics::Counter* cache_hits = nullptr;
  metrics::Counter* cache_misses = nullptr;
  metrics::Counter* cache_bypassed = nullptr;
  metrics::Gauge* cache_subscribed = nullptr;  // 1 while the cache is trusted
};

TokenMetrics& token_metrics();

inline void count_verification(TokenVerdict verdict) {
  token_metrics().verifications[static_cast<std::size_t>(verdict)]->inc();
}

}  // namespace stokend::tokens
