// See token_delivery.h.
#include "mta/server/token_delivery.h"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <cctype>
#include <memory>

#include "common/enhanced_status.h"
#include "common/log_lines.h"
#include "common/service_log.h"

namespace stokend::server {
namespace {

struct Outcome {
  queue::RecipientResult result;
  std::string permanent_token;  // set when a 2.1.13 is due
};

// The delivery id of a reply: one word of esmtp-value characters, at most
// 64 octets (rfcdraft/ §9). A Maildir name "T.M1P2Q3.host,S=225" keeps the
// part before ','; an id with anything else is replaced by our message id.
std::string reply_delivery_id(const std::string& delivery_id, const std::string& message_id) {
  std::string id = delivery_id.substr(0, delivery_id.find(','));
  bool usable = !id.empty() && id.size() <= 64 && std::all_of(id.begin(), id.end(), [](char c) {
    return c >= 33 && c <= 126 && c != '=';
  });
  return usable ? id : message_id;
}

// token: the permanent token to show, or a placeholder for the log, where
// a credential has no business.
std::string reply_line(const TokenRecipient& recipient, const Outcome& outcome,
                       const std::string& message_id, const std::string& token) {
  const std::string shown = "<" + recipient.address + ">";
  if (outcome.result.outcome == queue::RecipientResult::Outcome::delivered) {
    std::string id = reply_delivery_id(outcome.result.delivery_id, message_id);
    if (!outcome.permanent_token.empty()) {
      return "250 2.1.13 " + shown + " " + token + " " + id + " Delivered; permanent token issued";
    }
    return "250 2.1.12 " + shown + " " + id + " Delivered";
  }
  bool temporary = outcome.result.outcome == queue::RecipientResult::Outcome::temporary_failure;
  SplitReply split = split_reply(outcome.result.reply);
  std::string code = split.code.size() == 3 && split.code[0] == (temporary ? '4' : '5')
                         ? split.code
                         : (temporary ? "451" : "550");
  std::string enhanced = !split.enhanced.empty() && split.enhanced[0] == code[0]
                             ? split.enhanced
                             : (temporary ? "4.3.0" : "5.3.0");
  std::string text = split.text.empty() ? "Mailstore failure" : split.text;
  return code + " " + enhanced + " " + shown + " " + text;
}

}  // namespace

SplitReply split_reply(const std::string& reply) {
  SplitReply split;
  const bool has_code =
      reply.size() >= 3 &&
      std::all_of(reply.begin(), reply.begin() + 3,
                  [](char c) { return std::isdigit(static_cast<unsigned char>(c)); }) &&
      (reply.size() == 3 || reply[3] == ' ');
  if (!has_code) {
    split.text = reply;
    return split;
  }
  split.code = reply.substr(0, 3);
  split.text = reply.size() > 4 ? reply.substr(4) : std::string();
  split.enhanced = take_enhanced_code(std::stoi(split.code), split.text);
  return split;
}

TokenDelivery::TokenDelivery(queue::DeliveryAgent& mailstores, tokens::TokenAuthority& authority,
                             tokens::TokenStore& store, WorkRunner& workers)
    : mailstores_(mailstores), authority_(authority), store_(store), workers_(workers) {}

void TokenDelivery::deliver(const queue::QueuedMessage& message,
                            std::vector<TokenRecipient> recipients, Done done) {
  auto state = std::make_shared<std::vector<TokenRecipient>>(std::move(recipients));
  std::string sender = message.envelope.sender;
  std::string message_id = message.id;
  const auto arrival = message.arrival;
  mailstores_.deliver(
      message, message.envelope.recipients,
      [this, state, sender, message_id, arrival,
       done = std::move(done)](std::vector<queue::RecipientResult> results) mutable {
        // Token bookkeeping may fsync: off the loop thread.
        workers_.submit([this, state, sender, message_id, arrival, results = std::move(results),
                         done = std::move(done)]() mutable -> WorkRunner::Completion {
          std::vector<Outcome> outcomes;
          for (std::size_t i = 0; i < state->size(); ++i) {
            const TokenRecipient& recipient = (*state)[i];
            Outcome outcome{i < results.size() ? results[i] : queue::RecipientResult{}, {}};
            if (outcome.result.outcome == queue::RecipientResult::Outcome::delivered) {
              try {
                // A renewal due means the token used is inside its renewal
                // window, so permanent_for() gives a newer one.
                if (recipient.token_kind == tokens::TokenKind::temporary || recipient.renew_due) {
                  outcome.permanent_token = authority_.permanent_for(sender, recipient.address);
                }
              } catch (const std::exception& error) {
                spdlog::error("message {}: cannot issue a permanent token for {} -> {}: {}",
                              message_id, sender, recipient.address, error.what());
              }
              if (recipient.offered) {
                try {
                  store_.put_wallet(*recipient.offered);
                } catch (const std::exception& error) {
                  spdlog::error("message {}: cannot store the MYSTOKEN of {} for {}: {}",
                                message_id, sender, recipient.address, error.what());
                }
              }
            }
            outcomes.push_back(std::move(outcome));
          }
          return [state, outcomes = std::move(outcomes), message_id, sender, arrival,
                  done = std::move(done)]() {
            const double took =
                std::chrono::duration<double>(std::chrono::system_clock::now() - arrival).count();
            std::vector<std::string> replies;
            for (std::size_t i = 0; i < state->size(); ++i) {
              const auto& recipient = (*state)[i];
              const auto& outcome = outcomes[i];
              replies.push_back(
                  reply_line(recipient, outcome, message_id, outcome.permanent_token));
              spdlog::info("message {} token delivery: from=<{}> to=<{}> token={} mystoken={}: {}",
                           message_id, sender, recipient.address,
                           tokens::kind_name(recipient.token_kind),
                           recipient.offered ? "offered" : "no",
                           reply_line(recipient, outcome, message_id, "[permanent token]"));
              // The to= line of the synchronous delivery (common/log_lines.h).
              log_lines::Delivery line;
              line.recipient = recipient.address;
              line.relay = outcome.result.relay;
              line.transmission = took;
              line.status =
                  outcome.result.outcome == queue::RecipientResult::Outcome::delivered
                      ? log_lines::Status::sent
                  : outcome.result.outcome == queue::RecipientResult::Outcome::permanent_failure
                      ? log_lines::Status::bounced
                      : log_lines::Status::deferred;
              line.reply = reply_line(recipient, outcome, message_id, "[permanent token]");
              service_log(outcome.result.service)
                  .info("{}: {}", message_id, log_lines::delivery(line));
            }
            done(std::move(replies));
          };
        });
      });
}

}  // namespace stokend::server
