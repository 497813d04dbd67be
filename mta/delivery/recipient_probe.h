// Recipient verification at the next hop: for a local domain that stokend
// relays to the MX behind it (an smtp or lmtp route), an unknown recipient is
// refused at RCPT instead of being accepted and bounced later, by asking the
// next hop itself — MAIL FROM:<>, RCPT TO:<address>, RSET on a pooled
// connection — like Postfix's reject_unverified_recipient.
//
// Contract:
// - verify() keeps RecipientVerifier's contract (mta/server/recipient_verifier.h):
//   one answer, later, on the loop thread (a cached answer too, so a session
//   never gets its answer inside its own RCPT handler).
// - Answers are cached per address (lowercase): exists for positive_ttl,
//   unknown for negative_ttl; unverifiable is never cached. Concurrent
//   checks of one address share one probe. The cache holds at most
//   max_entries addresses; when full, expired entries go first, then the
//   whole cache (a simple bound: a flood of made-up addresses must not grow
//   memory).
// - No message is ever sent: the probe ends with RSET before any DATA.
#pragma once

#include <chrono>
#include <cstddef>
#include <functional>
#include <map>
#include <string>
#include <vector>

#include "common/deferred_calls.h"
#include "common/destination.h"
#include "mta/client/connection_pool.h"
#include "mta/recipient_verifier.h"

namespace stokend {

struct RecipientProbeSettings {
  std::chrono::milliseconds positive_ttl{std::chrono::hours(1)};
  std::chrono::milliseconds negative_ttl{std::chrono::minutes(10)};
  std::size_t max_entries = 100000;
};

class RecipientProbe final : public RecipientVerifier {
 public:
  using Clock = std::function<std::chrono::steady_clock::time_point()>;

  RecipientProbe(event_base* base, client::ConnectionPool& pool, RecipientProbeSettings settings,
                 Clock clock = std::chrono::steady_clock::now);

  void verify(const std::string& address, const Destination& next_hop, Done done) override;

  std::size_t cached() const { return cache_.size(); }

 private:
  struct Entry {
    RecipientCheck check;
    std::chrono::steady_clock::time_point expires;
  };
  void probe(const std::string& key, const std::string& address, const Destination& next_hop);
  void settle(const std::string& key, RecipientCheck check);
  void make_room();

  DeferredCalls deferred_;
  client::ConnectionPool& pool_;
  RecipientProbeSettings settings_;
  Clock clock_;
  std::map<std::string, Entry> cache_;
  std::map<std::string, std::vector<Done>> in_flight_;
};

}  // namespace stokend
