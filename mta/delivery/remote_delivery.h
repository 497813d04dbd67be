// Delivery of a queued message to the recipients of one remote domain: the
// fast lane first for those the sender holds a token for, then the ordinary
// path (the domain's route: MX hosts or a fixed next hop) for everyone else,
// with a Submission-Token header per recipient where tokens are distributed.
//
// Contract:
// - Only mail a local user submitted after AUTH (Envelope::
//   authenticated_sender: the submission role checked that the sender is
//   theirs, whichever user directory says so) uses tokens: the wallet, the
//   fast lane, distribution. Mail that came in by MX with a local sender
//   (which an alias may forward to a remote address), bounces and
//   everything else go the ordinary way unchanged.
// - Fast lane (mta/client/fast_lane.h): for each recipient whose wallet
//   entry for (sender, recipient) is usable (tokens/wallet_entry.h), with
//   MYSTOKEN our permanent token for the reverse pair (minted if absent). A
//   recipient it delivers is done (the reply names the path: "250 2.1.12
//   ... via the fast lane"); a returned permanent token replaces the wallet
//   entry; a refused token (535, 550 5.7.30) is removed from the wallet; every
//   recipient it does not deliver takes the ordinary path in the same
//   attempt, so a fast-lane failure costs no retry interval.
// - Distribution (DESIGN.md): with distribute_tokens chat (chat mail) or all,
//   each recipient on the ordinary path gets its own copy with
//   "Submission-Token: <a temporary token for (recipient, sender)>" on top,
//   one transaction per recipient, so nobody sees another's token (a token
//   lets its holder send as the recipient's correspondent).
// - Every token store call (wallet reads and writes, minting) runs on a
//   worker thread: the store may fsync or be a Redis server on the network.
//   A token store failure never stops a delivery: the recipient goes the
//   ordinary way.
// - Logs one "fast-lane:" line per recipient the fast lane was tried for
//   (delivered, or why it fell back); tokens never appear in logs.
// - done runs exactly once on the loop thread with one result per recipient,
//   in order.
#pragma once

#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "mta/client/fast_lane.h"
#include "mta/config/config.h"
#include "mta/worker_pool.h"
#include "queue/delivery_agent.h"
#include "tokens/token_authority.h"
#include "tokens/token_store.h"

namespace stokend {

class RemoteDelivery {
 public:
  using Results = std::function<void(std::vector<queue::RecipientResult>)>;
  // The domain's ordinary path for some recipients and a message text.
  using OrdinaryPath = std::function<void(std::vector<std::string> recipients,
                                          std::shared_ptr<const std::string> data, Results done)>;

  // fast_lane may be null (none built); while fast_lane.enabled is false it
  // is not used.
  RemoteDelivery(const FastLaneConfig& config, client::FastLane* fast_lane,
                 tokens::TokenAuthority& authority, tokens::TokenStore& store, WorkerPool& workers);

  void deliver(const queue::QueuedMessage& message, const std::string& domain,
               const std::vector<std::string>& recipients, OrdinaryPath ordinary, Results done);

  // A configuration reload: fast_lane.enabled and distribute_tokens apply
  // from the next delivery on. Loop thread only.
  void use_config(const FastLaneConfig& config) { config_ = config; }

 private:
  struct Delivery;
  void try_fast_lane(std::shared_ptr<Delivery> delivery);
  // The ordinary path's transactions (recipient indices), each copy with
  // its Submission-Token when minted has one for it.
  void send_ordinary(std::shared_ptr<Delivery> delivery,
                     std::vector<std::vector<std::size_t>> transactions,
                     std::vector<std::string> minted);
  void fast_lane_done(std::shared_ptr<Delivery> delivery,
                      std::vector<client::FastLaneResult> results);
  void take_ordinary_path(std::shared_ptr<Delivery> delivery);

  FastLaneConfig config_;
  client::FastLane* fast_lane_;
  tokens::TokenAuthority& authority_;
  tokens::TokenStore& store_;
  WorkerPool& workers_;
};

}  // namespace stokend
