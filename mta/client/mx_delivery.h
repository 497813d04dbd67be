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
//
// TLS: a TlsRequirement makes every host of the domain need STARTTLS (and,
// if asked, a certificate valid for that host's name). A host that fails it
// counts as unreachable, so the next host is tried, and the message is never
// sent in plaintext instead; when the last host failed that way the result
// keeps the TLS failure's 4.7.x code and the requirement's note, so the
// queue shows why the message waits.
#pragma once

#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "dns/resolver.h"
#include "mta/client/connection_pool.h"
#include "mta/client/transaction.h"

namespace stokend::client {

// How strictly one delivery must use TLS (mta/tls_policies.h decides it per
// recipient domain). The default is opportunistic STARTTLS, unverified.
struct TlsRequirement {
  TlsPolicy policy = TlsPolicy::opportunistic;  // required: STARTTLS or no delivery
  bool verify_certificate = false;              // against each MX host's name
  // Put before the reason of a TLS failure, e.g. "TLS required by policy
  // (require) for bank.example", so the queue's reply says why.
  std::string note;
};

class MxDelivery {
 public:
  using Done = std::function<void(TransactionResult)>;

  // smtp_port: where MX hosts are contacted (25; tests use a high port).
  MxDelivery(ConnectionPool& pool, dns::Resolver& resolver, std::uint16_t smtp_port);

  // Delivers to a fixed next hop, no DNS (routes like smtp:[10.0.0.5]:25).
  // The destination carries its own TLS rules; tls_note is put before the
  // reason when they are not met (see TlsRequirement::note).
  void deliver_to(const Destination& destination, Envelope envelope,
                  std::shared_ptr<const std::string> message, Done done, std::string tls_note = {});
  // Delivers to a fixed next hop given by name (routes like
  // smtp:[relay.example]:587): its A/AAAA addresses are tried in turn, never
  // its MX records (the brackets say so, as in Postfix). shape gives the
  // port, TLS rules and credentials of every connection; its host is
  // replaced by each address, and host_name is the SNI unless shape names
  // another.
  void deliver_to_named_host(const std::string& host_name, const Destination& shape,
                             Envelope envelope, std::shared_ptr<const std::string> message,
                             Done done, std::string tls_note = {});
  // Delivers to the MX hosts of domain.
  void deliver_to_domain(const std::string& domain, Envelope envelope,
                         std::shared_ptr<const std::string> message, Done done,
                         TlsRequirement tls = {});

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

// Whether a connection to destination failed because its TLS rules were not
// met (STARTTLS missing or refused, handshake or certificate failure), as
// opposed to the host being unreachable.
bool is_tls_requirement_failure(const Destination& destination, const Failure& failure);

}  // namespace stokend::client
