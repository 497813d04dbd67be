// See token_metrics.h.
#include "tokens/token_metrics.h"

#include <string>

namespace stokend::tokens {
namespace {

TokenMetrics make_metrics() {
  TokenMetrics made;
  for (std::size_t i = 0; i < verdict_count; ++i) {
    const auto verdict = static_cast<TokenVerdict>(i);
    made.verifications[i] = &metrics::default_registry().counter(
        "stokend_token_verifications_total", "Submission tokens verified, by verdict.",
        {{"verdict", std::string(verdict_name(verdict))}});
  }
  const char* lookups_help = "Token store reads of verification, by how the cache answered.";
  made.cache_hits = &metrics::default_registry().counter("stokend_token_cache_lookups_total",
                                                         lookups_help, {{"result", "hit"}});
  made.cache_misses = &metrics::default_registry().counter("stokend_token_cache_lookups_total",
                                                           lookups_help, {{"result", "miss"}});
  made.cache_bypassed = &metrics::default_registry().counter(
      "stokend_token_cache_lookups_total", lookups_help, {{"result", "bypassed"}});
  made.cache_subscribed = &metrics::default_registry().gauge(
      "stokend_token_cache_subscribed",
      "1 while the Redis token store's change notifications are subscribed (its cache in use).");
  return made;
}

}  // namespace

TokenMetrics& token_metrics() {
  static TokenMetrics instruments = make_metrics();
  return instruments;
}

}  // namespace stokend::tokens
