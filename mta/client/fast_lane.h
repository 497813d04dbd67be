// The fast lane as the rest of the daemon sees it: deliver one message to
// recipients of one remote domain through that domain's Token Server, with
// the tokens the caller found in the sender's wallet, and say per recipient
// whether it was delivered or must take the ordinary path.
//
// Contract: deliver() calls done exactly once, later, on the loop thread,
// with one FastLaneResult per recipient in order. A result is either
// delivered (the Token Server stored the message for that recipient) or
// fall_back: every other case, so the caller hands the recipient to the
// queue's ordinary MX path. token_refused marks the answers that say the
// token itself is no good (535, 550 5.7.30): the caller drops it from the
// wallet. Implementations do not touch the token store. RemoteClient
// (remote_client.h) is the real one; unit tests use fakes.
#pragma once

#include <functional>
#include <memory>
#include <string>
#include <vector>

namespace stokend::client {

struct FastLaneRecipient {
  std::string address;
  std::string token;     // from the wallet: the Token Server's token for (sender, address)
  std::string my_token;  // our permanent token for the reverse pair (MYSTOKEN)
};

struct FastLaneResult {
  enum class Outcome { delivered, fall_back };
  Outcome outcome = Outcome::fall_back;
  bool token_refused = false;   // 535 or 550 5.7.30: drop the token from the wallet
  std::string reply;            // the server's reply, or why the fast lane was not taken
  std::string delivery_id;      // from 2.1.12 / 2.1.13
  std::string permanent_token;  // from 2.1.13: the Token Server's permanent token for the pair
  std::string server;           // "tokens.example.org[192.0.2.1]:465", when one was reached
};

class FastLane {
 public:
  using Done = std::function<void(std::vector<FastLaneResult>)>;

  virtual ~FastLane() = default;
  virtual void deliver(const std::string& domain, const std::string& sender,
                       std::vector<FastLaneRecipient> recipients,
                       std::shared_ptr<const std::string> message, Done done) = 0;
};

}  // namespace stokend::client
