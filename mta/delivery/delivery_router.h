// The daemon's side of the queue: delivers a queued message to its due
// recipients by route (mta/routes.h) — the built-in Maildir on worker
// threads, LMTP into a mailstore such as Dovecot, SMTP to a fixed next hop,
// or SMTP to the domain's MX hosts — and reports one result per recipient.
//
// Contract: as queue::DeliveryAgent. Recipients are grouped by route (and by
// domain for MX delivery), each group in one transaction; the groups run at
// once and `done` runs when the last has answered. A local recipient who no
// longer exists (deleted after the message was accepted) fails permanently
// with 5.1.1.
//
// Remote domains (not local): mail of local users goes through
// RemoteDelivery (mta/delivery/remote_delivery.h) when one is given — the fast lane
// first, Submission-Token distribution — with the route as its ordinary path.
//
// TLS: SMTP deliveries (mx and smtp routes) follow the recipient domain's
// policy from tls_policies (mta/tls_policies.h): under require or verify a
// destination that cannot meet it fails temporarily with a reply that names
// the policy, so the message is retried and finally bounced, never sent in
// plaintext. Local mailstores (maildir, lmtp routes) are not affected.
#pragma once

#include "mta/client/connection_pool.h"
#include "mta/client/mx_delivery.h"
#include "mta/config/config.h"
#include "mta/delivery/remote_delivery.h"
#include "mta/store/mailstore.h"
#include "mta/tls_policies.h"
#include "mta/users.h"
#include "mta/worker_pool.h"
#include "queue/delivery_agent.h"

namespace stokend {

class DeliveryRouter final : public queue::DeliveryAgent {
 public:
  DeliveryRouter(const Config& config, UserDirectory& users, store::Mailstore& maildir,
                 WorkerPool& workers, client::ConnectionPool& pool, client::MxDelivery& mx,
                 RemoteDelivery* remote = nullptr);

  void deliver(const queue::QueuedMessage& message, std::span<const std::string> recipients,
               Done done) override;

  // A configuration reload: local domains, routes and TLS policies from
  // config from the next delivery attempt on (one already routed finishes
  // on its route). Loop thread only.
  void use_config(std::shared_ptr<const Config> config);

  // The same routes for the Token Server's synchronous deliveries
  // (mta/server/token_delivery.h): counted as route token_server in the
  // metrics (mta/mta_metrics.h), not as the mailstore's.
  queue::DeliveryAgent& for_token_server() { return token_server_agent_; }

 private:
  struct Batch;
  struct Group;
  class TokenServerAgent final : public queue::DeliveryAgent {
   public:
    explicit TokenServerAgent(DeliveryRouter& router) : router_(router) {}
    void deliver(const queue::QueuedMessage& message, std::span<const std::string> recipients,
                 Done done) override {
      router_.route(message, recipients, std::move(done), true);
    }

   private:
    DeliveryRouter& router_;
  };
  void route(const queue::QueuedMessage& message, std::span<const std::string> recipients,
             Done done, bool token_server);
  void deliver_maildir(const queue::QueuedMessage& message, std::shared_ptr<Batch> batch,
                       const Group& group);
  void deliver_lmtp(const queue::QueuedMessage& message, std::shared_ptr<Batch> batch,
                    const Group& group);
  void deliver_smtp(const queue::QueuedMessage& message, std::shared_ptr<Batch> batch,
                    const Group& group);

  const Config* config_;
  std::shared_ptr<const Config> reloaded_config_;  // owns *config_ after use_config()
  RouteTable routes_;
  TlsPolicyTable tls_policies_;
  UserDirectory& users_;
  store::Mailstore& maildir_;
  WorkerPool& workers_;
  client::ConnectionPool& pool_;
  client::MxDelivery& mx_;
  RemoteDelivery* remote_;
  TokenServerAgent token_server_agent_{*this};
};

}  // namespace stokend
