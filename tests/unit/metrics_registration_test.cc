// Unit tests for the metrics each folder registers (queue/queue_metrics.h,
// tokens/token_metrics.h, mta/mta_metrics.h) in the process's registry:
// they register without clashing, every label value shows from the start,
// and the counting functions move the sample they name and no other.
#include <catch2/catch.hpp>
#include <string>

#include "common/metrics.h"
#include "mta/mta_metrics.h"
#include "queue/queue_metrics.h"
#include "tokens/token_metrics.h"

using namespace stokend;

namespace {

std::string scrape() {
  queue::queue_metrics();
  tokens::token_metrics();
  mta_metrics::mta_metrics();
  std::string out;
  metrics::default_registry().render(out);
  return out;
}

// The value of the sample line that starts with `sample` (name and labels).
double sample(const std::string& text, const std::string& name_and_labels) {
  const std::string prefix = "\n" + name_and_labels + " ";
  const auto at = text.find(prefix);
  REQUIRE(at != std::string::npos);
  return std::stod(text.substr(at + prefix.size()));
}

}  // namespace

TEST_CASE("metrics: every folder's metrics show, with every label value", "[metrics]") {
  const std::string text = scrape();
  for (const char* line :
       {"stokend_connections_total{listener=\"submissions\",outcome=\"refused_address_limit\"}",
        "stokend_sessions_open{listener=\"mx\"}", "stokend_sessions_total{role=\"token_server\"}",
        "stokend_messages_rejected_total{reason=\"too_many_hops\"}",
        "stokend_deliveries_total{route=\"token_server\",outcome=\"bounced\"}",
        "stokend_fast_lane_deliveries_total{result=\"exchanged\"}",
        "stokend_token_cache_lookups_total{result=\"bypassed\"}", "stokend_token_cache_subscribed",
        "stokend_fast_lane_fallbacks_total{reason=\"connection_lost\"}",
        "stokend_token_verifications_total{verdict=\"wrong_pair\"}",
        "stokend_tls_handshakes_total{direction=\"outbound\",version=\"other\"}",
        "stokend_spool_fsync_seconds_bucket{le=\"+Inf\"}",
        "stokend_delivery_latency_seconds_count"}) {
    INFO(line);
    CHECK(text.find(std::string("\n") + line + " ") != std::string::npos);
  }
  CHECK(text.find("# TYPE stokend_spool_fsync_seconds histogram\n") != std::string::npos);
}

TEST_CASE("metrics: a count moves its own sample only", "[metrics]") {
  const std::string before = scrape();
  mta_metrics::count_rejected(mta_metrics::Rejection::relay_denied);
  mta_metrics::count_delivery(mta_metrics::Route::fast_lane, mta_metrics::Outcome::sent, 2);
  mta_metrics::count_tls_handshake(mta_metrics::Direction::inbound, 0x0304);  // TLS 1.3
  tokens::count_verification(tokens::TokenVerdict::expired);
  const std::string after = scrape();
  auto moved = [&](const std::string& line) { return sample(after, line) - sample(before, line); };
  CHECK(moved("stokend_messages_rejected_total{reason=\"relay_denied\"}") == 1);
  CHECK(moved("stokend_messages_rejected_total{reason=\"unknown_recipient\"}") == 0);
  CHECK(moved("stokend_deliveries_total{route=\"fast_lane\",outcome=\"sent\"}") == 2);
  CHECK(moved("stokend_deliveries_total{route=\"mx\",outcome=\"sent\"}") == 0);
  CHECK(moved("stokend_tls_handshakes_total{direction=\"inbound\",version=\"TLSv1.3\"}") == 1);
  CHECK(moved("stokend_token_verifications_total{verdict=\"expired\"}") == 1);
  CHECK(moved("stokend_token_verifications_total{verdict=\"valid\"}") == 0);
}
