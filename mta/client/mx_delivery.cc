// See mx_delivery.h.
#include "mta/client/mx_delivery.h"

#include <spdlog/spdlog.h>

#include "common/log_lines.h"
#include "dns/mail_exchangers.h"

namespace stokend::client {

struct MxDelivery::Attempt {
  Envelope envelope;
  std::shared_ptr<const std::string> message;
  Done done;
  std::vector<dns::MxRecord> hosts;
  std::size_t next_host = 0;
  std::vector<std::string> addresses;  // of the current host
  std::size_t next_address = 0;
  std::string current_host;
  // Port, TLS rules and credentials of each connection; host is set per address.
  Destination shape;
  std::string tls_note;  // put before the reason of a TLS failure
  std::string last_failure = "no mail exchanger could be reached";
  std::string last_enhanced = "4.4.1";  // RFC 3463: no answer from host
};

TransactionResult fail_all(const Envelope& envelope, DeliveryStatus status, std::string enhanced,
                           std::string reason) {
  TransactionResult result;
  for (const auto& recipient : envelope.recipients) {
    result.recipients.push_back({recipient, status, 0, enhanced, reason});
  }
  return result;
}

bool is_tls_requirement_failure(const Destination& destination, const Failure& failure) {
  if (destination.tls_policy != TlsPolicy::required) return false;
  // RFC 3463: 4.7.4 security features not supported, 4.7.5 cryptographic
  // failure; the client uses them for exactly these cases.
  return failure.tls_failed || failure.enhanced_code == "4.7.4" || failure.enhanced_code == "4.7.5";
}

MxDelivery::MxDelivery(ConnectionPool& pool, dns::Resolver& resolver, std::uint16_t smtp_port)
    : pool_(pool), resolver_(resolver), smtp_port_(smtp_port) {}

void MxDelivery::deliver_to(const Destination& destination, Envelope envelope,
                            std::shared_ptr<const std::string> message, Done done,
                            std::string tls_note) {
  pool_.acquire(destination, [this, destination, envelope = std::move(envelope), message,
                              done = std::move(done), tls_note = std::move(tls_note)](
                                 std::shared_ptr<SmtpClient> connection,
                                 std::optional<Failure> failure) mutable {
    if (!connection) {
      std::string reason = failure->reason;
      if (!tls_note.empty() && is_tls_requirement_failure(destination, *failure)) {
        reason = tls_note + ": " + reason;
      }
      return done(fail_all(envelope, DeliveryStatus::temporary, failure->enhanced_code, reason));
    }
    connection->send_transaction(
        std::move(envelope), message,
        [this, connection, destination, done = std::move(done)](TransactionResult result) {
          pool_.release(connection, !result.connection_failure);
          result.relay = log_lines::endpoint(destination.host, destination.host, destination.port);
          done(std::move(result));
        });
  });
}

void MxDelivery::deliver_to_domain(const std::string& domain, Envelope envelope,
                                   std::shared_ptr<const std::string> message, Done done,
                                   TlsRequirement tls) {
  auto attempt = std::make_shared<Attempt>();
  attempt->shape = Destination::tcp(Protocol::smtp, {}, smtp_port_);
  attempt->shape.tls_policy = tls.policy;
  attempt->shape.verify_certificate = tls.verify_certificate;
  attempt->tls_note = std::move(tls.note);
  attempt->envelope = std::move(envelope);
  attempt->message = std::move(message);
  attempt->done = std::move(done);
  dns::find_mail_exchangers(
      resolver_, domain, [this, attempt, domain](dns::MailExchangers exchangers) {
        switch (exchangers.result) {
          case dns::MailExchangers::ok:
            attempt->hosts = std::move(exchangers.hosts);
            return try_next_host(attempt);
          case dns::MailExchangers::permanent_failure:
            // RFC 3463: 5.1.2 bad destination system address.
            return attempt->done(fail_all(attempt->envelope, DeliveryStatus::permanent, "5.1.2",
                                          domain + ": " + exchangers.error));
          case dns::MailExchangers::temporary_failure:
            return attempt->done(fail_all(attempt->envelope, DeliveryStatus::temporary, "4.4.3",
                                          domain + ": " + exchangers.error));
        }
      });
}

void MxDelivery::deliver_to_named_host(const std::string& host_name, const Destination& shape,
                                       Envelope envelope,
                                       std::shared_ptr<const std::string> message, Done done,
                                       std::string tls_note) {
  auto attempt = std::make_shared<Attempt>();
  attempt->shape = shape;
  attempt->tls_note = std::move(tls_note);
  attempt->envelope = std::move(envelope);
  attempt->message = std::move(message);
  attempt->done = std::move(done);
  attempt->hosts.push_back({0, host_name});
  attempt->last_failure = host_name + " could not be reached";
  try_next_host(attempt);
}

void MxDelivery::try_next_host(std::shared_ptr<Attempt> attempt) {
  if (attempt->next_host >= attempt->hosts.size()) {
    return attempt->done(fail_all(attempt->envelope, DeliveryStatus::temporary,
                                  attempt->last_enhanced, attempt->last_failure));
  }
  attempt->current_host = attempt->hosts[attempt->next_host++].host;
  resolver_.resolve_addresses(
      attempt->current_host, [this, attempt](dns::Answer<std::string> answer) {
        if (answer.status != dns::Status::ok || answer.records.empty()) {
          attempt->last_failure = attempt->current_host + ": no address (" + answer.error + ")";
          attempt->last_enhanced = "4.4.1";
          return try_next_host(attempt);
        }
        attempt->addresses = std::move(answer.records);
        attempt->next_address = 0;
        try_next_address(attempt);
      });
}

void MxDelivery::try_next_address(std::shared_ptr<Attempt> attempt) {
  if (attempt->next_address >= attempt->addresses.size()) return try_next_host(attempt);
  Destination destination = attempt->shape;
  destination.host = attempt->addresses[attempt->next_address++];
  // The host name is both the SNI and, under verify, the name the
  // certificate must carry (RFC 7672 §3.2.2 does the same for DANE).
  if (destination.tls_server_name.empty()) destination.tls_server_name = attempt->current_host;
  pool_.acquire(destination, [this, attempt, destination](std::shared_ptr<SmtpClient> connection,
                                                          std::optional<Failure> failure) {
    if (!connection) {
      attempt->last_failure = attempt->current_host + ": " + failure->reason;
      attempt->last_enhanced = "4.4.1";
      if (failure->enhanced_code.starts_with("4.7.")) {
        // A security refusal (a smarthost's 535 5.7.8 to our AUTH) says more
        // than "no answer": the queue shows it as it came.
        attempt->last_enhanced = failure->enhanced_code;
      }
      if (is_tls_requirement_failure(destination, *failure)) {
        if (!attempt->tls_note.empty()) {
          attempt->last_failure = attempt->tls_note + ": " + attempt->last_failure;
        }
        attempt->last_enhanced = failure->enhanced_code;
      }
      spdlog::debug("mx: {}", attempt->last_failure);
      return try_next_address(attempt);
    }
    connection->send_transaction(
        attempt->envelope, attempt->message,
        [this, attempt, connection, destination](TransactionResult result) {
          pool_.release(connection, !result.connection_failure);
          result.relay =
              log_lines::endpoint(attempt->current_host, destination.host, destination.port);
          if (result.connection_failure && !result.message_sent) {
            // RFC 5321 §5.1: when a host fails, the next one is tried.
            attempt->last_failure =
                attempt->current_host + ": " + result.connection_failure->reason;
            attempt->last_enhanced = "4.4.1";
            return try_next_address(attempt);
          }
          attempt->done(std::move(result));
        });
  });
}

}  // namespace stokend::client
