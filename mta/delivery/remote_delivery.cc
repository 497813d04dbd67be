// See remote_delivery.h.
#include "mta/delivery/remote_delivery.h"

#include <spdlog/spdlog.h>

#include "mta/mta_metrics.h"
#include "tokens/harvest.h"
#include "tokens/wallet_entry.h"

namespace stokend {

struct RemoteDelivery::Delivery {
  std::string message_id;
  std::string sender;
  std::string domain;
  std::shared_ptr<const std::string> data;
  bool distribute = false;
  OrdinaryPath ordinary;
  Results done;

  std::vector<std::string> recipients;
  std::vector<queue::RecipientResult> results;
  std::vector<bool> settled;
  // The fast-lane candidates: recipient indices and what the fast lane needs.
  std::vector<std::size_t> candidates;
  std::vector<client::FastLaneRecipient> fast_lane_recipients;
  std::size_t outstanding = 0;  // ordinary-path transactions not yet answered

  void settle(std::size_t index, queue::RecipientResult result) {
    results[index] = std::move(result);
    settled[index] = true;
  }
};

RemoteDelivery::RemoteDelivery(const FastLaneConfig& config, client::FastLane* fast_lane,
                               tokens::TokenAuthority& authority, tokens::TokenStore& store,
                               WorkerPool& workers)
    : config_(config),
      fast_lane_(fast_lane),
      authority_(authority),
      store_(store),
      workers_(workers) {}

void RemoteDelivery::deliver(const queue::QueuedMessage& message, const std::string& domain,
                             const std::vector<std::string>& recipients, OrdinaryPath ordinary,
                             Results done) {
  auto delivery = std::make_shared<Delivery>();
  delivery->message_id = message.id;
  delivery->sender = message.envelope.sender;
  delivery->domain = domain;
  delivery->data = message.data;
  delivery->ordinary = std::move(ordinary);
  delivery->done = std::move(done);
  delivery->recipients = recipients;
  delivery->results.resize(recipients.size());
  delivery->settled.assign(recipients.size(), false);

  // Tokens are our users' own: only mail one of them submitted after AUTH
  // carries them (queued_message.h). Mail from outside with one of our
  // senders, which an alias may forward, takes the ordinary path.
  const bool local_sender =
      !message.bounce && !message.envelope.sender.empty() && message.envelope.authenticated_sender;
  if (!local_sender) return take_ordinary_path(delivery);
  delivery->distribute = config_.distribute_tokens == TokenDistribution::all ||
                         (config_.distribute_tokens == TokenDistribution::chat && message.chat);
  if (!fast_lane_ || !config_.enabled) return take_ordinary_path(delivery);

  try_fast_lane(delivery);
}

void RemoteDelivery::try_fast_lane(std::shared_ptr<Delivery> delivery) {
  // The wallet and MYSTOKEN (our permanent token for the way back, minted
  // and stored the first time) are in the token store, which may fsync or be
  // a Redis server on the network: on a worker thread. A wallet that cannot
  // be read sends its recipients by MX.
  workers_.submit([this, delivery]() -> WorkerPool::Completion {
    const std::int64_t now = authority_.now();
    for (std::size_t i = 0; i < delivery->recipients.size(); ++i) {
      const std::string& recipient = delivery->recipients[i];
      try {
        const auto entry = store_.find_wallet(delivery->sender, recipient);
        if (!entry || !tokens::wallet_entry_usable(*entry, delivery->sender, recipient, now)) {
          continue;
        }
        delivery->candidates.push_back(i);
        delivery->fast_lane_recipients.push_back({recipient, entry->token, {}});
      } catch (const std::exception& error) {
        spdlog::error("fast-lane: {} to=<{}>: cannot read the wallet: {}", delivery->message_id,
                      recipient, error.what());
      }
    }
    for (auto& recipient : delivery->fast_lane_recipients) {
      try {
        recipient.my_token = authority_.permanent_for(recipient.address, delivery->sender);
      } catch (const std::exception& error) {
        spdlog::error("fast-lane: {} to=<{}>: no MYSTOKEN, cannot issue a permanent token: {}",
                      delivery->message_id, recipient.address, error.what());
      }
    }
    return [this, delivery] {
      if (delivery->candidates.empty()) return take_ordinary_path(delivery);
      fast_lane_->deliver(delivery->domain, delivery->sender, delivery->fast_lane_recipients,
                          delivery->data,
                          [this, delivery](std::vector<client::FastLaneResult> results) {
                            fast_lane_done(delivery, std::move(results));
                          });
    };
  });
}

void RemoteDelivery::fast_lane_done(std::shared_ptr<Delivery> delivery,
                                    std::vector<client::FastLaneResult> results) {
  std::vector<tokens::WalletToken> to_store;
  std::vector<std::pair<std::string, std::string>> to_drop;  // (recipient, refused token)
  const std::int64_t now = authority_.now();
  for (std::size_t position = 0; position < results.size(); ++position) {
    const std::size_t index = delivery->candidates[position];
    const std::string& address = delivery->recipients[index];
    client::FastLaneResult& result = results[position];
    if (result.token_refused) {
      to_drop.emplace_back(address, delivery->fast_lane_recipients[position].token);
    }
    if (result.outcome != client::FastLaneResult::Outcome::delivered) {
      spdlog::info("fast-lane: {} to=<{}> falls back to the queue: {}{}", delivery->message_id,
                   address, result.reply, result.token_refused ? " (token dropped)" : "");
      continue;
    }
    // The reply without the permanent token of a 2.1.13: it goes into the
    // queue's log and into bounces.
    const std::string codes = result.reply.substr(0, result.reply.find(' ', 4));  // "250 2.1.12"
    std::string reply = codes + " <" + address + "> " + result.delivery_id +
                        " delivered via the fast lane (" + result.server + ")";
    spdlog::info("fast-lane: {} to=<{}> delivered by {}: {} id={}", delivery->message_id, address,
                 result.server, codes, result.delivery_id);
    mta_metrics::count_delivery(mta_metrics::Route::fast_lane, mta_metrics::Outcome::sent);
    queue::RecipientResult delivered{queue::RecipientResult::Outcome::delivered, std::move(reply),
                                     result.delivery_id};
    delivered.relay = result.server;  // the log's to= line: relay= the Token Server
    delivery->settle(index, std::move(delivered));
    if (!result.permanent_token.empty()) {
      auto check = tokens::wallet_entry_for(result.permanent_token, delivery->sender, address, now,
                                            true, "2.1.13");
      if (check.entry) {
        to_store.push_back(std::move(*check.entry));
      } else {
        spdlog::warn("fast-lane: {} to=<{}>: permanent token from {} not kept: {}",
                     delivery->message_id, address, result.server, check.reason);
      }
    }
  }
  if (!to_store.empty() || !to_drop.empty()) {
    workers_.submit([this, sender = delivery->sender, to_store = std::move(to_store),
                     to_drop = std::move(to_drop)]() -> WorkerPool::Completion {
      try {
        for (const auto& entry : to_store) store_.put_wallet(entry);
        for (const auto& [recipient, token] : to_drop) {
          store_.delete_wallet(sender, recipient, token);
        }
      } catch (const std::exception& error) {
        spdlog::error("fast-lane: cannot update the wallet of {}: {}", sender, error.what());
      }
      return {};
    });
  }
  take_ordinary_path(delivery);
}

void RemoteDelivery::take_ordinary_path(std::shared_ptr<Delivery> delivery) {
  std::vector<std::size_t> pending;
  for (std::size_t i = 0; i < delivery->recipients.size(); ++i) {
    if (!delivery->settled[i]) pending.push_back(i);
  }
  if (pending.empty()) {
    auto done = std::move(delivery->done);
    return done(std::move(delivery->results));
  }
  // One transaction for all, or one per recipient with its own token.
  std::vector<std::vector<std::size_t>> transactions;
  if (delivery->distribute) {
    for (std::size_t index : pending) transactions.push_back({index});
  } else {
    transactions.push_back(pending);
  }
  if (!delivery->distribute) return send_ordinary(delivery, std::move(transactions), {});
  // rfcdraft/ "Distribution": each copy carries a temporary token that lets
  // the recipient's server deliver the reply to our user through the fast
  // lane. Minting reads the pair's revocation mark in the token store: on a
  // worker thread. A copy whose token cannot be minted goes without one.
  workers_.submit(
      [this, delivery, transactions = std::move(transactions)]() mutable -> WorkerPool::Completion {
        std::vector<std::string> minted;
        for (const auto& indices : transactions) {
          const std::string& recipient = delivery->recipients[indices.front()];
          try {
            minted.push_back(authority_.mint_temporary(recipient, delivery->sender));
          } catch (const std::exception& error) {
            spdlog::error("queue: {} to=<{}>: sent without a Submission-Token: {}",
                          delivery->message_id, recipient, error.what());
            minted.emplace_back();
          }
        }
        return [this, delivery, transactions = std::move(transactions),
                minted = std::move(minted)]() mutable {
          send_ordinary(delivery, std::move(transactions), std::move(minted));
        };
      });
}

void RemoteDelivery::send_ordinary(std::shared_ptr<Delivery> delivery,
                                   std::vector<std::vector<std::size_t>> transactions,
                                   std::vector<std::string> minted) {
  delivery->outstanding = transactions.size();
  for (std::size_t number = 0; number < transactions.size(); ++number) {
    const std::vector<std::size_t>& indices = transactions[number];
    std::vector<std::string> addresses;
    for (std::size_t index : indices) addresses.push_back(delivery->recipients[index]);
    std::shared_ptr<const std::string> data = delivery->data;
    if (number < minted.size() && !minted[number].empty()) {
      data = std::make_shared<const std::string>(std::string(tokens::submission_token_field) +
                                                 ": " + minted[number] + "\r\n" + *delivery->data);
    }
    delivery->ordinary(std::move(addresses), std::move(data),
                       [delivery, indices](std::vector<queue::RecipientResult> results) {
                         for (std::size_t i = 0; i < indices.size(); ++i) {
                           delivery->settle(indices[i], std::move(results[i]));
                         }
                         if (--delivery->outstanding == 0) {
                           auto done = std::move(delivery->done);
                           done(std::move(delivery->results));
                         }
                       });
  }
}

}  // namespace stokend
