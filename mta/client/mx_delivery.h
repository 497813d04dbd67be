// Delivery of one message to the recipients of one remote domain over SMTP:
// find the domain's mail exchangers (RFC 5321 §5.1), then try each host in
// preference order, and each of its addresses, until one answers.
//
// Contract: deliver() calls done exactly once, later, on the loop thread,
// with one result per recipient in order. A host that cannot be reached, or
// whose connection fails before the message was handed over, makes the next
// host be tried; a reply decides (RFC 5321 §4.2.1: 4xx temporary, 5xx
// permanent). A connection lost after the end of data was sent is not
// retried on another host within this attempt (the first may have the
// message). DNS failures: permanent ones fail every recipient permanently
// (5.1.2), temporary ones defer (4.4.3).
#pragma once

#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "dns/resolver.h"
#include "mta/client/connection_pool.h"
#include "mta/client/transaction.h"

namespace stokend::client {

class MxDelivery {
 public:
  using Done = std::function<void(TransactionResult)>;

  // smtp_port: where MX hosts are contacted (25; tests use a high port).
  MxDelivery(ConnectionPool& pool, dns::Resolver& resolver, std::uint16_t smtp_port);

  // Delivers to a fixed next hop, no DNS (routes like smtp:[10.0.0.5]:25).
  void deliver_to(const Destination& destination, Envelope envelope,
                  std::shared_ptr<const std::string> message, Done done);
  // Delivers to the MX hosts of domain.
  void deliver_to_domain(const std::string& domain, Envelope envelope,
                         std::shared_ptr<const std::string> message, Done done);

 private:
  struct Attempt;
  void try_next_host(std::shared_ptr<Attempt> attempt);
  void try_next_address(std::shared_ptr<Attempt> attempt);

  ConnectionPool& pool_;
  dns::Resolver& resolver_;
  std::uint16_t smtp_port_;
};

// Every recipient gets the same result (a failure before any reply).
TransactionResult fail_all(const Envelope& envelope, DeliveryStatus status, std::string enhanced,
                           std::string reason);

}  // namespace stokend::client
