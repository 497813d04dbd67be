// See delivery_router.h.
#include "mta/delivery/delivery_router.h"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <map>

#include "common/ascii.h"
#include "common/log_lines.h"
#include "message/address.h"
#include "mta/addresses/local_users.h"
#include "mta/addresses/recipient_delimiter.h"
#include "mta/delivery/dsn_forwarding.h"
#include "mta/mta_metrics.h"
#include "mta/store/lmtp_store.h"

namespace stokend {
namespace {

queue::RecipientResult stored(queue::RecipientResult::Outcome outcome, std::string reply,
                              std::string delivery_id, queue::Handoff handoff) {
  queue::RecipientResult result;
  result.outcome = outcome;
  result.reply = std::move(reply);
  result.delivery_id = std::move(delivery_id);
  result.handoff = handoff;
  return result;
}

// service and relay: the log's to= line (Maildir: "local", as Postfix's
// local delivery agent).
queue::RecipientResult from_store(const store::DeliveryResult& result, Service service,
                                  const std::string& relay) {
  using Status = store::DeliveryResult::Status;
  queue::RecipientResult converted;
  switch (result.status) {
    case Status::delivered:
      converted = stored(queue::RecipientResult::Outcome::delivered,
                         "250 2.0.0 Saved " + result.delivery_id, result.delivery_id,
                         queue::Handoff::mailstore);
      break;
    case Status::permanent_failure:
      converted = stored(queue::RecipientResult::Outcome::permanent_failure,
                         "550 5.3.0 " + result.detail, {}, queue::Handoff::relayed);
      break;
    case Status::temporary_failure:
      converted = stored(queue::RecipientResult::Outcome::temporary_failure,
                         "451 4.3.0 " + result.detail, {}, queue::Handoff::relayed);
      break;
  }
  converted.service = service;
  converted.relay = relay;
  return converted;
}

// relay= of an LMTP next hop: "host[address]:port", or the socket's path.
std::string lmtp_relay(const Destination& next_hop) {
  if (next_hop.is_unix_socket()) return "lmtp[" + log_lines::printable(next_hop.unix_path) + "]";
  return log_lines::endpoint(next_hop.host, next_hop.host, next_hop.port);
}

queue::RecipientResult from_client(const client::RecipientResult& result, bool dsn_offered,
                                   const std::string& relay) {
  using client::DeliveryStatus;
  queue::RecipientResult converted;
  converted.outcome = result.status == DeliveryStatus::delivered
                          ? queue::RecipientResult::Outcome::delivered
                      : result.status == DeliveryStatus::permanent
                          ? queue::RecipientResult::Outcome::permanent_failure
                          : queue::RecipientResult::Outcome::temporary_failure;
  converted.reply = result.reply_line();
  converted.handoff = dsn_offered ? queue::Handoff::relayed_with_dsn : queue::Handoff::relayed;
  converted.service = Service::smtp;
  converted.relay = relay;
  return converted;
}

// Whether BODY=8BITMIME is needed. Eight octets at a time: this runs over
// every outbound message, and a byte loop showed up in profiles at 100 KB.
bool has_eight_bit_octets(const std::string& data) {
  constexpr std::uint64_t high_bits = 0x8080808080808080ULL;
  std::size_t position = 0;
  for (; position + 8 <= data.size(); position += 8) {
    std::uint64_t word;
    std::memcpy(&word, data.data() + position, sizeof word);
    if (word & high_bits) return true;
  }
  for (; position < data.size(); ++position) {
    if (static_cast<unsigned char>(data[position]) >= 0x80) return true;
  }
  return false;
}

// One count per recipient (mta_metrics.h).
void count_results(mta_metrics::Route route, const std::vector<queue::RecipientResult>& results) {
  using Outcome = queue::RecipientResult::Outcome;
  for (const queue::RecipientResult& result : results) {
    mta_metrics::count_delivery(
        route, result.outcome == Outcome::delivered           ? mta_metrics::Outcome::sent
               : result.outcome == Outcome::permanent_failure ? mta_metrics::Outcome::bounced
                                                              : mta_metrics::Outcome::deferred);
  }
}

}  // namespace

struct DeliveryRouter::Batch {
  std::vector<queue::RecipientResult> results;
  std::size_t outstanding = 0;
  Done done;

  void settle(const std::vector<std::size_t>& indices,
              const std::vector<queue::RecipientResult>& group_results) {
    for (std::size_t i = 0; i < indices.size(); ++i) results[indices[i]] = group_results[i];
    if (--outstanding == 0) done(std::move(results));
  }
};

struct DeliveryRouter::Group {
  Route route;
  std::string domain;  // for MX delivery
  std::vector<std::size_t> indices;
  std::vector<std::string> addresses;
  bool token_server = false;  // a synchronous delivery of the Token Server
};

DeliveryRouter::DeliveryRouter(const Config& config, UserDirectory& users,
                               store::Mailstore& maildir, WorkerPool& workers,
                               client::ConnectionPool& pool, client::MxDelivery& mx,
                               RemoteDelivery* remote)
    : config_(&config),
      routes_(config.routes),
      tls_policies_(config.tls_policies),
      users_(users),
      maildir_(maildir),
      workers_(workers),
      pool_(pool),
      mx_(mx),
      remote_(remote) {}

void DeliveryRouter::use_config(std::shared_ptr<const Config> config) {
  routes_ = RouteTable(config->routes);
  tls_policies_ = TlsPolicyTable(config->tls_policies);
  config_ = config.get();
  reloaded_config_ = std::move(config);
}

void DeliveryRouter::deliver(const queue::QueuedMessage& message,
                             std::span<const std::string> recipients, Done done) {
  route(message, recipients, std::move(done), false);
}

void DeliveryRouter::route(const queue::QueuedMessage& message,
                           std::span<const std::string> recipients, Done done, bool token_server) {
  std::map<std::string, Group> groups;
  for (std::size_t i = 0; i < recipients.size(); ++i) {
    const std::string& address = recipients[i];
    std::string domain = ascii_lowercase(address.substr(address.rfind('@') + 1));
    Route route = routes_.route_for(domain, config_->is_local_domain(domain));
    std::string key = route.transport == Route::Transport::mx ? "mx:" + domain : route.to_string();
    // Domains that share a fixed next hop share a transaction only when
    // neither has a TLS policy: a policy is the domain's own, and verify
    // checks the certificate against the domain's name.
    if (route.transport == Route::Transport::smtp &&
        tls_policies_.policy_for(domain) != TlsPolicyLevel::may) {
      key += ";policy-for=" + domain;
    } else if (remote_ && route.transport == Route::Transport::smtp &&
               !config_->is_local_domain(domain)) {
      // The fast lane and its fallback work per recipient domain.
      key += ";domain=" + domain;
    }
    Group& group = groups[key];
    group.route = route;
    group.domain = domain;
    group.indices.push_back(i);
    group.addresses.push_back(address);
    group.token_server = token_server;
  }
  auto batch = std::make_shared<Batch>();
  batch->results.resize(recipients.size());
  batch->outstanding = groups.size();
  batch->done = std::move(done);
  for (const auto& [key, group] : groups) {
    switch (group.route.transport) {
      case Route::Transport::maildir:
        deliver_maildir(message, batch, group);
        break;
      case Route::Transport::lmtp:
        deliver_lmtp(message, batch, group);
        break;
      case Route::Transport::smtp:
      case Route::Transport::mx:
        deliver_smtp(message, batch, group);
        break;
    }
  }
}

void DeliveryRouter::deliver_maildir(const queue::QueuedMessage& message,
                                     std::shared_ptr<Batch> batch, const Group& group) {
  users_.refresh_if_changed();
  std::vector<queue::RecipientResult> results(group.addresses.size());
  std::vector<std::size_t> to_store;  // positions within the group
  std::vector<store::Recipient> mailboxes;
  for (std::size_t i = 0; i < group.addresses.size(); ++i) {
    // alice+news@ is delivered to alice, Delivered-To naming alice+news@.
    const std::string address = ascii_lowercase(group.addresses[i]);
    const User* user = addresses::find_local_user(users_, address, config_->recipient_delimiter);
    if (!user) {
      results[i] = stored(queue::RecipientResult::Outcome::permanent_failure,
                          "550 5.1.1 <" + group.addresses[i] + ">: user unknown", {},
                          queue::Handoff::relayed);
      results[i].service = Service::local;
      results[i].relay = "local";
      continue;
    }
    auto at = user->address.rfind('@');
    to_store.push_back(i);
    mailboxes.push_back({user->address.substr(0, at), user->address.substr(at + 1),
                         message.chat && user->coi_filter == CoiFilter::active,
                         address == user->address ? "" : address});
  }
  const auto counted_as =
      group.token_server ? mta_metrics::Route::token_server : mta_metrics::Route::maildir;
  if (mailboxes.empty()) {
    count_results(counted_as, results);
    return batch->settle(group.indices, results);
  }
  store::Mailstore* maildir = &maildir_;
  workers_.submit([batch, maildir, counted_as, data = message.data, indices = group.indices,
                   results = std::move(results), to_store = std::move(to_store),
                   mailboxes = std::move(mailboxes)]() mutable {
    for (std::size_t i = 0; i < mailboxes.size(); ++i) {
      results[to_store[i]] =
          from_store(maildir->deliver(mailboxes[i], *data), Service::local, "local");
    }
    return WorkerPool::Completion(
        [batch, counted_as, indices = std::move(indices), results = std::move(results)] {
          count_results(counted_as, results);
          batch->settle(indices, results);
        });
  });
}

void DeliveryRouter::deliver_lmtp(const queue::QueuedMessage& message, std::shared_ptr<Batch> batch,
                                  const Group& group) {
  // The mailbox is the address without its extension (the LMTP server need
  // not know the delimiter). A recipient with an extension gets its own
  // transaction, the message with its Delivered-To field above (RFC 9228);
  // the others share one, as before.
  struct Part {
    std::vector<std::size_t> positions;  // within the group
    std::vector<store::Recipient> mailboxes;
    std::shared_ptr<const std::string> data;
  };
  std::vector<Part> parts(1);
  parts[0].data = message.data;
  for (std::size_t i = 0; i < group.addresses.size(); ++i) {
    const std::string address = ascii_lowercase(group.addresses[i]);
    const auto extension = addresses::split_extension(address, config_->recipient_delimiter);
    const std::string& mailbox = extension ? extension->base : address;
    const auto at = mailbox.rfind('@');
    store::Recipient recipient{mailbox.substr(0, at), mailbox.substr(at + 1), false, {}};
    if (!extension) {
      parts[0].positions.push_back(i);
      parts[0].mailboxes.push_back(std::move(recipient));
      continue;
    }
    parts.push_back(Part{
        {i},
        {std::move(recipient)},
        std::make_shared<const std::string>("Delivered-To: " + address + "\r\n" + *message.data)});
  }
  if (parts[0].positions.empty()) parts.erase(parts.begin());

  // Each transaction settles its recipients; the last one settles the group.
  struct Pending {
    std::vector<queue::RecipientResult> results;
    std::size_t outstanding = 0;
  };
  auto pending = std::make_shared<Pending>();
  pending->results.resize(group.addresses.size());
  pending->outstanding = parts.size();
  const auto counted_as =
      group.token_server ? mta_metrics::Route::token_server : mta_metrics::Route::lmtp;
  const std::string relay = lmtp_relay(group.route.next_hop);
  store::LmtpStore lmtp(pool_, group.route.next_hop);
  for (Part& part : parts) {
    lmtp.deliver(part.mailboxes, part.data, message.envelope.sender,
                 [batch, pending, counted_as, relay, indices = group.indices,
                  positions = part.positions](std::vector<store::DeliveryResult> delivered) {
                   for (std::size_t i = 0; i < delivered.size() && i < positions.size(); ++i) {
                     pending->results[positions[i]] =
                         from_store(delivered[i], Service::lmtp, relay);
                   }
                   if (--pending->outstanding != 0) return;
                   count_results(counted_as, pending->results);
                   batch->settle(indices, pending->results);
                 });
  }
}

void DeliveryRouter::deliver_smtp(const queue::QueuedMessage& message, std::shared_ptr<Batch> batch,
                                  const Group& group) {
  // The route's own path, for some of the group's recipients and a message
  // text (RemoteDelivery may add a header per recipient).
  RemoteDelivery::OrdinaryPath send =
      [this, sender = message.envelope.sender, eight_bit = has_eight_bit_octets(*message.data),
       route = group.route, domain = group.domain,
       dsn = std::make_shared<const queue::Envelope>(message.envelope)](
          std::vector<std::string> recipients, std::shared_ptr<const std::string> data,
          RemoteDelivery::Results done) {
        client::Envelope envelope;
        envelope.sender = sender;
        // RFC 3461 §5.2: the DSN requests go on to a next hop that offers DSN.
        envelope.dsn_mail_parameters = dsn_mail_parameters(*dsn);
        for (const std::string& recipient : recipients) {
          const auto position =
              std::find(dsn->recipients.begin(), dsn->recipients.end(), recipient);
          envelope.dsn_recipient_parameters.push_back(dsn_recipient_parameters(
              *dsn, static_cast<std::size_t>(position - dsn->recipients.begin())));
        }
        envelope.recipients = std::move(recipients);
        envelope.eight_bit_body = eight_bit;
        const auto counted_as = route.transport == Route::Transport::smtp ? mta_metrics::Route::smtp
                                                                          : mta_metrics::Route::mx;
        auto finished = [done = std::move(done), counted_as](client::TransactionResult result) {
          std::vector<queue::RecipientResult> results;
          for (const auto& recipient : result.recipients) {
            results.push_back(from_client(recipient, result.dsn_offered, result.relay));
          }
          count_results(counted_as, results);
          done(std::move(results));
        };
        const TlsPolicyLevel level = tls_policies_.policy_for(domain);
        std::string tls_note;
        if (level != TlsPolicyLevel::may) {
          tls_note = "TLS required by policy (" + std::string(to_string(level)) + ") for " + domain;
        }
        if (route.transport == Route::Transport::smtp && !route.next_hop_name.empty()) {
          // A smarthost by name: verify checks that name, as Postfix does
          // for a [relay] next hop.
          Destination next_hop = route.next_hop;
          apply_tls_policy(level, route.next_hop_name, next_hop);
          if (tls_note.empty() && !next_hop.auth_login.empty()) {
            tls_note = "TLS required for AUTH at " + route.next_hop_name;
          }
          mx_.deliver_to_named_host(route.next_hop_name, next_hop, std::move(envelope),
                                    std::move(data), std::move(finished), std::move(tls_note));
        } else if (route.transport == Route::Transport::smtp) {
          // The next hop is an IP literal, which names nothing a certificate for
          // the domain's mail would carry: verify checks the recipient domain.
          Destination next_hop = route.next_hop;
          apply_tls_policy(level, domain, next_hop);
          if (tls_note.empty() && !next_hop.auth_login.empty()) {
            tls_note = "TLS required for AUTH at " + next_hop.describe();
          }
          mx_.deliver_to(next_hop, std::move(envelope), std::move(data), std::move(finished),
                         std::move(tls_note));
        } else {
          client::TlsRequirement tls;
          if (level != TlsPolicyLevel::may) {
            tls.policy = TlsPolicy::required;
            tls.verify_certificate = level == TlsPolicyLevel::verify;
            tls.note = std::move(tls_note);
          }
          mx_.deliver_to_domain(domain, std::move(envelope), std::move(data), std::move(finished),
                                std::move(tls));
        }
      };
  auto settle = [batch, indices = group.indices](std::vector<queue::RecipientResult> results) {
    batch->settle(indices, results);
  };
  if (remote_ && !config_->is_local_domain(group.domain)) {
    return remote_->deliver(message, group.domain, group.addresses, std::move(send),
                            std::move(settle));
  }
  send(group.addresses, message.data, std::move(settle));
}

}  // namespace stokend
