// The token authority's metrics (common/metrics.h): tokens verified, by
// verdict (token_authority.h), as presented by Token Server clients (AUTH
// STOKEN, RCPT STOKEN=) and by anything else that asks the authority.
//
// Contract: token_metrics() registers stokend_token_verifications_total with
// one sample per verdict the first time it is called and returns the same
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
};

TokenMetrics& token_metrics();

inline void count_verification(TokenVerdict verdict) {
  token_metrics().verifications[static_cast<std::size_t>(verdict)]->inc();
}

}  // namespace stokend::tokens
