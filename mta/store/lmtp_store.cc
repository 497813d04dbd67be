// See lmtp_store.h.
#include "mta/store/lmtp_store.h"

#include <spdlog/spdlog.h>

#include <algorithm>

namespace stokend::store {
namespace {

struct Delivery {
  client::ConnectionPool* pool;
  Destination destination;
  client::Envelope envelope;
  std::shared_ptr<const std::string> message;
  LmtpStore::DeliveryCallback done;
  bool retried = false;
};

bool has_eight_bit(const std::string& message) {
  return std::any_of(message.begin(), message.end(),
                     [](char c) { return static_cast<unsigned char>(c) >= 0x80; });
}

std::vector<DeliveryResult> all_temporary(std::size_t count, const std::string& detail) {
  DeliveryResult result;
  result.status = DeliveryResult::Status::temporary_failure;
  result.detail = detail;
  return std::vector<DeliveryResult>(count, result);
}

std::vector<DeliveryResult> to_delivery_results(const client::TransactionResult& transaction) {
  std::vector<DeliveryResult> results;
  for (const auto& recipient : transaction.recipients) {
    DeliveryResult result;
    switch (recipient.status) {
      case client::DeliveryStatus::delivered:
        result.status = DeliveryResult::Status::delivered;
        result.delivery_id = lmtp_delivery_id(recipient.text);
        break;
      case client::DeliveryStatus::temporary:
        result.status = DeliveryResult::Status::temporary_failure;
        break;
      case client::DeliveryStatus::permanent:
        result.status = DeliveryResult::Status::permanent_failure;
        break;
    }
    if (result.status != DeliveryResult::Status::delivered) {
      std::string detail;
      if (recipient.reply_code != 0) detail = std::to_string(recipient.reply_code) + " ";
      if (!recipient.enhanced_code.empty()) detail += recipient.enhanced_code + " ";
      result.detail = detail + recipient.text;
    }
    results.push_back(std::move(result));
  }
  return results;
}

bool any_final_outcome(const client::TransactionResult& result) {
  return std::any_of(
      result.recipients.begin(), result.recipients.end(),
      [](const client::RecipientResult& recipient) { return recipient.reply_code != 0; });
}

void attempt(std::shared_ptr<Delivery> delivery) {
  delivery->pool->acquire(delivery->destination, [delivery](
                                                     std::shared_ptr<client::SmtpClient> connection,
                                                     std::optional<client::Failure> failure) {
    if (failure) {
      return delivery->done(all_temporary(delivery->envelope.recipients.size(), failure->reason));
    }
    bool reused = connection->transactions_completed() > 0;
    // The callback holds the connection until the transaction ends.
    connection->send_transaction(
        delivery->envelope, delivery->message,
        [delivery, connection, reused](client::TransactionResult result) {
          delivery->pool->release(connection, !result.connection_failure);
          if (result.connection_failure && reused && !result.message_sent &&
              !any_final_outcome(result) && !delivery->retried) {
            spdlog::debug("lmtp {}: reused connection failed ({}), retrying on a new one",
                          delivery->destination.describe(), result.connection_failure->reason);
            delivery->retried = true;
            return attempt(delivery);
          }
          delivery->done(to_delivery_results(result));
        });
  });
}

}  // namespace

std::string lmtp_delivery_id(const std::string& reply_text) {
  // Dovecot: "<user@domain> <id> Saved" (the enhanced code is already off).
  if (reply_text.empty() || reply_text.front() != '<') return {};
  auto address_end = reply_text.find("> ");
  if (address_end == std::string::npos) return {};
  auto start = address_end + 2;
  auto end = reply_text.find(' ', start);
  return reply_text.substr(start, end == std::string::npos ? std::string::npos : end - start);
}

LmtpStore::LmtpStore(client::ConnectionPool& pool, Destination destination)
    : pool_(pool), destination_(std::move(destination)) {
  destination_.protocol = Protocol::lmtp;
}

void LmtpStore::deliver(const std::vector<Recipient>& recipients,
                        std::shared_ptr<const std::string> message, std::string sender,
                        DeliveryCallback done) {
  auto delivery = std::make_shared<Delivery>();
  delivery->pool = &pool_;
  delivery->destination = destination_;
  delivery->envelope.sender = std::move(sender);
  for (const auto& recipient : recipients) {
    delivery->envelope.recipients.push_back(recipient.local_part + "@" + recipient.domain);
  }
  delivery->envelope.eight_bit_body = message && has_eight_bit(*message);
  delivery->message = std::move(message);
  delivery->done = std::move(done);
  attempt(std::move(delivery));
}

}  // namespace stokend::store
