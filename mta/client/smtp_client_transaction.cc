// See smtp_client.h. Mail transactions and raw commands on a ready
// SmtpClient: the checks that need no round trip, MAIL, RCPT and DATA one at
// a time or pipelined (RFC 2920), the dot-stuffed message streamed with flow
// control, the final reply (one per accepted recipient for LMTP, RFC 2033
// §4.2), and the RSET that makes the connection reusable (RFC 5321 §4.1.1.5).
#include <event2/buffer.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <string_view>

#include "common/ascii.h"
#include "mta/client/smtp_client.h"

namespace stokend::client {
namespace {

bool has_line_break(std::string_view text) {
  return text.find_first_of(std::string_view("\r\n\0", 3)) != std::string_view::npos;
}

DeliveryStatus status_of(const Reply& reply) {
  if (reply.is_positive()) return DeliveryStatus::delivered;
  if (reply.is_permanent_failure()) return DeliveryStatus::permanent;
  return DeliveryStatus::temporary;  // 4xx, or a 3xx where none belongs
}

}  // namespace

void SmtpClient::send_transaction(Envelope envelope, std::shared_ptr<const std::string> message,
                                  TransactionCallback done) {
  auto refuse = [&](Failure failure) {
    TransactionResult result;
    for (const auto& address : envelope.recipients) {
      result.recipients.push_back(
          {address, DeliveryStatus::temporary, 0, failure.enhanced_code, failure.reason});
    }
    result.connection_failure = std::move(failure);
    deferred_.post([done = std::move(done), result = std::move(result)] { done(result); });
  };
  if (!is_idle()) return refuse({"4.3.0", "connection to " + peer_ + " is not idle"});
  if (!message) return refuse({"4.3.0", "no message given"});
  transaction_ = std::make_unique<Transaction>();
  Transaction& transaction = *transaction_;
  transaction.envelope = std::move(envelope);
  transaction.message = std::move(message);
  transaction.done = std::move(done);
  for (const auto& address : transaction.envelope.recipients) {
    transaction.result.recipients.push_back({address, DeliveryStatus::temporary, 0, "", ""});
  }
  transaction.outcome_final.assign(transaction.envelope.recipients.size(), false);
  if (phase_ == Phase::ready) begin_transaction();
  // Otherwise RSET is still being answered; on_reset_reply starts it.
}

void SmtpClient::begin_transaction() {
  Transaction& transaction = *transaction_;
  transaction.started = true;
  phase_ = Phase::busy;
  const Envelope& envelope = transaction.envelope;
  std::size_t size = transaction.message->size();

  // Decisions that need no round trip fail every recipient at once.
  auto refuse_all = [&](DeliveryStatus status, const std::string& enhanced,
                        const std::string& text) {
    for (auto& recipient : transaction.result.recipients) {
      recipient.status = status;
      recipient.enhanced_code = enhanced;
      recipient.text = text;
    }
    std::fill(transaction.outcome_final.begin(), transaction.outcome_final.end(), true);
    std::shared_ptr<Transaction> finished = std::move(transaction_);
    phase_ = Phase::ready;
    deferred_.post([finished] { finished->done(std::move(finished->result)); });
  };
  if (envelope.recipients.empty()) {
    return refuse_all(DeliveryStatus::permanent, "5.5.1", "no recipients");
  }
  bool smuggling =
      has_line_break(envelope.sender) || has_line_break(envelope.mail_parameters) ||
      has_line_break(envelope.dsn_mail_parameters) ||
      std::any_of(envelope.recipients.begin(), envelope.recipients.end(), has_line_break) ||
      std::any_of(envelope.recipient_parameters.begin(), envelope.recipient_parameters.end(),
                  has_line_break) ||
      std::any_of(envelope.dsn_recipient_parameters.begin(),
                  envelope.dsn_recipient_parameters.end(), has_line_break);
  if (smuggling) {
    return refuse_all(DeliveryStatus::permanent, "5.5.4",
                      "CR, LF or NUL in an envelope address or parameter");
  }
  bool needs_utf8 = !is_ascii(envelope.sender) ||
                    std::any_of(envelope.recipients.begin(), envelope.recipients.end(),
                                [](const std::string& address) { return !is_ascii(address); });
  if (needs_utf8 && !capabilities_.smtputf8) {
    // RFC 6531 §3.2: without SMTPUTF8 at the server, the message cannot go.
    return refuse_all(DeliveryStatus::permanent, "5.6.7",
                      "SMTPUTF8 is required, but was not offered by host " + peer_);
  }
  if (capabilities_.size_limit > 0 && size > capabilities_.size_limit) {
    // RFC 1870 §6.1: do not send what the server has said it will refuse.
    return refuse_all(DeliveryStatus::permanent, "5.3.4",
                      "message size " + std::to_string(size) + " exceeds size limit " +
                          std::to_string(capabilities_.size_limit) + " of server " + peer_);
  }

  std::string mail = "MAIL FROM:<" + envelope.sender + ">";
  if (capabilities_.size_announced) mail += " SIZE=" + std::to_string(size);  // RFC 1870 §6
  if (envelope.eight_bit_body && capabilities_.eight_bit_mime) mail += " BODY=8BITMIME";
  if (needs_utf8) mail += " SMTPUTF8";
  if (!envelope.mail_parameters.empty()) mail += " " + envelope.mail_parameters;
  transaction.result.dsn_offered = capabilities_.dsn;
  if (capabilities_.dsn && !envelope.dsn_mail_parameters.empty()) {
    mail += " " + envelope.dsn_mail_parameters;
  }

  transaction.pipelined = settings_.use_pipelining && capabilities_.pipelining;
  if (!transaction.pipelined) {
    write_line(mail);
    expect("MAIL", settings_.timeouts.command, [this](const Reply& r) { on_mail_reply(r); });
    return;
  }
  // RFC 2920 §3.1: MAIL and RCPT may be grouped; DATA ends the group. One
  // write, then the replies in the same order.
  std::string group = mail + "\r\n";
  for (std::size_t i = 0; i < envelope.recipients.size(); ++i) {
    group += recipient_command(i) + "\r\n";
  }
  group += "DATA\r\n";
  if (settings_.transcript) {
    for (std::size_t start = 0, end; (end = group.find("\r\n", start)) != std::string::npos;
         start = end + 2) {
      settings_.transcript('C', std::string_view(group).substr(start, end - start));
    }
  }
  bufferevent_write(connection_.get(), group.data(), group.size());
  expect("MAIL", settings_.timeouts.command, [this](const Reply& r) { on_mail_reply(r); });
  for (std::size_t i = 0; i < envelope.recipients.size(); ++i) {
    expect("RCPT", settings_.timeouts.command,
           [this, i](const Reply& r) { on_recipient_reply(i, r); });
  }
  expect("DATA", settings_.timeouts.data_initiation, [this](const Reply& r) { on_data_reply(r); });
}

std::string SmtpClient::recipient_command(std::size_t index) const {
  const Envelope& envelope = transaction_->envelope;
  std::string command = "RCPT TO:<" + envelope.recipients[index] + ">";
  if (index < envelope.recipient_parameters.size() &&
      !envelope.recipient_parameters[index].empty()) {
    command += " " + envelope.recipient_parameters[index];
  }
  if (capabilities_.dsn && index < envelope.dsn_recipient_parameters.size() &&
      !envelope.dsn_recipient_parameters[index].empty()) {
    command += " " + envelope.dsn_recipient_parameters[index];
  }
  return command;
}

void SmtpClient::send_recipient(std::size_t index) {
  write_line(recipient_command(index));
  expect("RCPT", settings_.timeouts.command,
         [this, index](const Reply& r) { on_recipient_reply(index, r); });
}

void SmtpClient::send_data_command() {
  write_line("DATA");
  expect("DATA", settings_.timeouts.data_initiation, [this](const Reply& r) { on_data_reply(r); });
}

void SmtpClient::settle(std::size_t recipient, const Reply& reply) {
  RecipientResult& result = transaction_->result.recipients[recipient];
  result.status = status_of(reply);
  result.reply_code = reply.code;
  result.enhanced_code = reply.enhanced_code;
  result.text = reply.text();
  transaction_->outcome_final[recipient] = true;
}

void SmtpClient::on_mail_reply(const Reply& reply) {
  Transaction& transaction = *transaction_;
  if (!reply.is_positive()) {
    // MAIL refused: every recipient shares its fate (4xx temporary, 5xx
    // permanent). Pipelined RCPT and DATA replies still come and are
    // ignored (they will be 503s).
    transaction.mail_refused = true;
    for (std::size_t i = 0; i < transaction.result.recipients.size(); ++i) settle(i, reply);
    if (!transaction.pipelined) finish_transaction(true);
    return;
  }
  if (!transaction.pipelined) send_recipient(0);
}

void SmtpClient::on_recipient_reply(std::size_t index, const Reply& reply) {
  Transaction& transaction = *transaction_;
  if (transaction.mail_refused) return;
  if (reply.is_positive()) {
    transaction.accepted.push_back(index);
  } else {
    settle(index, reply);
  }
  if (transaction.pipelined) return;
  if (index + 1 < transaction.envelope.recipients.size()) return send_recipient(index + 1);
  if (transaction.accepted.empty()) return finish_transaction(true);
  send_data_command();
}

void SmtpClient::on_data_reply(const Reply& reply) {
  Transaction& transaction = *transaction_;
  if (reply.code == 354) {
    if (transaction.mail_refused || transaction.accepted.empty()) {
      // Pipelined, nobody accepted, and yet the server wants data (RFC 2920
      // §3.1 asks servers not to). Results are final already; the server
      // now waits for a message, so the connection cannot be reused.
      return finish_transaction(false);
    }
    transaction.stuffer.emplace(*transaction.message);
    // Keep the socket fed while streaming: refill at half a chunk.
    bufferevent_setwatermark(connection_.get(), EV_WRITE, settings_.data_chunk_size / 2, 0);
    return feed_data();
  }
  if (!transaction.mail_refused) {
    for (std::size_t index : transaction.accepted) settle(index, reply);
  }
  finish_transaction(true);
}

void SmtpClient::feed_data() {
  Transaction& transaction = *transaction_;
  evbuffer* output = bufferevent_get_output(connection_.get());
  std::string chunk;
  while (!transaction.stuffer->finished() &&
         evbuffer_get_length(output) < settings_.data_chunk_size) {
    chunk.clear();
    transaction.stuffer->append_next(chunk, settings_.data_chunk_size);
    bufferevent_write(connection_.get(), chunk.data(), chunk.size());
  }
  if (!transaction.stuffer->finished()) return;
  bufferevent_setwatermark(connection_.get(), EV_WRITE, 0, 0);
  transaction.result.message_sent = true;
  if (settings_.transcript) {
    settings_.transcript(
        '*', "[" + std::to_string(transaction.message->size()) + " octets of message, then .]");
  }
  // RFC 2033 §4.2: LMTP answers the end of data once per accepted recipient
  // (and so does an SMTP server asked for it, Envelope::reply_per_recipient).
  transaction.final_replies_expected = replies_per_recipient() ? transaction.accepted.size() : 1;
  for (std::size_t k = 0; k < transaction.final_replies_expected; ++k) {
    expect("end of data", settings_.timeouts.data_done,
           [this, k](const Reply& r) { on_final_reply(k, r); });
  }
}

void SmtpClient::on_final_reply(std::size_t index, const Reply& reply) {
  Transaction& transaction = *transaction_;
  if (replies_per_recipient()) {
    settle(transaction.accepted[index], reply);
  } else {
    for (std::size_t accepted : transaction.accepted) settle(accepted, reply);
  }
  if (index + 1 == transaction.final_replies_expected) finish_transaction(true);
}

bool SmtpClient::replies_per_recipient() const {
  return destination_.protocol == Protocol::lmtp || transaction_->envelope.reply_per_recipient;
}

void SmtpClient::finish_transaction(bool reusable) {
  auto finished = std::move(transaction_);
  ++transactions_completed_;
  if (reusable) {
    // Reset before the connection is offered again: it also proves the
    // connection still works (RFC 5321 §4.1.1.5).
    phase_ = Phase::resetting;
    write_line("RSET");
    expect("RSET", settings_.timeouts.command, [this](const Reply& r) { on_reset_reply(r); });
  } else {
    teardown();
  }
  finished->done(std::move(finished->result));
}

void SmtpClient::on_reset_reply(const Reply& reply) {
  if (phase_ != Phase::resetting) return;  // QUIT already on its way
  if (!reply.is_positive()) {
    return fail({as_temporary(reply.enhanced_code, "4.3.0"),
                 peer_ + " refused RSET: " + reply.to_string(), reply.code});
  }
  phase_ = Phase::ready;
  start_waiting_work();
}

void SmtpClient::start_waiting_work() {
  if (transaction_ && !transaction_->started) return begin_transaction();
  if (command_ && !command_->started) return begin_command();
}

// ---- raw commands ------------------------------------------------------

void SmtpClient::send_command(std::string line, CommandCallback done) {
  auto refuse = [&](std::string reason) {
    spdlog::info("client {}: {}", peer_, reason);
    CommandResult result;
    result.failure = Failure{"4.3.0", std::move(reason)};
    deferred_.post([done = std::move(done), result = std::move(result)] { done(result); });
  };
  if (line.find_first_of("\r\n") != std::string::npos) {
    return refuse("command line contains CR or LF");
  }
  if (!is_idle()) return refuse("connection to " + peer_ + " is not idle");
  command_ = Command{std::move(line), std::move(done), false};
  if (phase_ == Phase::ready) begin_command();
}

void SmtpClient::begin_command() {
  command_->started = true;
  phase_ = Phase::busy;
  write_line(command_->line);
  expect("command", settings_.timeouts.command, [this](const Reply& r) { on_command_reply(r); });
}

void SmtpClient::on_command_reply(const Reply& reply) {
  auto command = std::move(*command_);
  command_.reset();
  phase_ = Phase::ready;
  CommandResult result;
  result.reply = reply;
  command.done(std::move(result));
}

}  // namespace stokend::client
