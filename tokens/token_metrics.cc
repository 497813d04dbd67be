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
  return made;
}

}  // namespace

TokenMetrics& token_metrics() {
  static TokenMetrics instruments = make_metrics();
  return instruments;
}

}  // namespace stokend::tokens
