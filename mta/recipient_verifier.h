// What a session asks of the next hop about a recipient it cannot find in
// the users (a `recipient_probe` domain): does this address exist there?
// RecipientProbe (mta/delivery/recipient_probe.h) implements it by asking the next
// hop; tests use a fake (tests/support/).
//
// Contract: verify() answers once, later, on the loop thread (never inside
// verify() itself). exists: the next hop accepted the RCPT (2xx); unknown:
// it refused it permanently (5xx; reply is its reply, quoted in ours);
// unverifiable: a 4xx, or no answer (connection, TLS, timeout).
#pragma once

#include <functional>
#include <string>

#include "common/destination.h"

namespace stokend {

struct RecipientCheck {
  enum class Verdict { exists, unknown, unverifiable };
  Verdict verdict = Verdict::unverifiable;
  std::string reply;  // the next hop's reply or why there was none
};

class RecipientVerifier {
 public:
  using Done = std::function<void(RecipientCheck)>;
  virtual ~RecipientVerifier() = default;
  // next_hop: where the address's domain is relayed to.
  virtual void verify(const std::string& address, const Destination& next_hop, Done done) = 0;
};

}  // namespace stokend
