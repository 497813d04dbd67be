// Synchronous delivery for the Token Server: a message that arrived with
// submission tokens goes straight into the mailstore, and each recipient's
// reply is sent only once the mailstore has committed it (DESIGN.md, "The
// protocol as stokend implements it"; rfcdraft/ "Delivery").
//
// Contract:
// - deliver() is called on the loop thread and `done` runs on the loop
//   thread, once, with one reply line (no CRLF) per recipient, in order:
//     250 2.1.12 <addr> <delivery-id> Delivered
//     250 2.1.13 <addr> <permanent-token> <delivery-id> Delivered; ...
//     451 4.x.x <addr> ...   (mailstore temporary failure: nothing is queued)
//     5xx 5.x.x <addr> ...   (mailstore permanent failure)
// - 2.1.13 comes when the recipient was accepted with a temporary token, or
//   with a permanent token due for renewal: it carries the pair's newest
//   permanent token outside the renewal window, minted if there is none
//   (TokenAuthority::permanent_for).
// - A MYSTOKEN offered for a delivered recipient (already checked by the
//   session: reverse pair, not expired) is stored in that user's wallet.
// - Token store writes may wait for an fsync, so they run on a worker
//   thread. If one fails the message is still delivered: the reply is 2.1.12
//   and the failure is logged.
// - Only mailstore routes (maildir, lmtp) are given to it; the session
//   refuses other recipients at RCPT.
#pragma once

#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "mta/work_runner.h"
#include "queue/delivery_agent.h"
#include "tokens/token_authority.h"

namespace stokend::server {

struct TokenRecipient {
  std::string address;  // the local user's address, normalised
  tokens::TokenKind token_kind = tokens::TokenKind::temporary;  // of its STOKEN
  bool renew_due = false;  // a permanent STOKEN near its expiry
  // MYSTOKEN as a wallet entry for our user, when offered and acceptable.
  std::optional<tokens::WalletToken> offered;
};

// What the Token Server asks of delivery: deliver now, one reply per
// recipient (the contract above). TokenDelivery implements it; tests use a
// fake (tests/support/).
class SynchronousDelivery {
 public:
  using Done = std::function<void(std::vector<std::string> replies)>;
  virtual ~SynchronousDelivery() = default;
  // message: id, envelope (sender = the token's remote address), chat flag
  // and data; recipients: the same addresses as message.envelope.recipients.
  virtual void deliver(const queue::QueuedMessage& message, std::vector<TokenRecipient> recipients,
                       Done done) = 0;
};

class TokenDelivery final : public SynchronousDelivery {
 public:
  TokenDelivery(queue::DeliveryAgent& mailstores, tokens::TokenAuthority& authority,
                tokens::TokenStore& store, WorkRunner& workers);

  void deliver(const queue::QueuedMessage& message, std::vector<TokenRecipient> recipients,
               Done done) override;

 private:
  queue::DeliveryAgent& mailstores_;
  tokens::TokenAuthority& authority_;
  tokens::TokenStore& store_;
  WorkRunner& workers_;
};

// "250 2.0.0 Saved x" → {"250", "2.0.0", "Saved x"}; missing parts are empty.
struct SplitReply {
  std::string code;
  std::string enhanced;
  std::string text;
};
SplitReply split_reply(const std::string& reply);

}  // namespace stokend::server
