// What the submission role asks of an outside SASL service (Dovecot's auth
// service through dovecot_auth_client.h): which mechanisms to offer in EHLO,
// and to carry one AUTH exchange (RFC 4954 §4) step by step. The session
// relays the client's base64 lines as they are and learns the login from
// the service. Tests use a fake (tests/support/).
//
// Contract: loop thread only. begin() returns the exchange's id; each step's
// answer arrives through the callback on a later loop iteration, never
// inside begin() or respond(). After a challenge, respond() sends the
// client's next line. abandon() forgets an exchange (the client cancelled,
// the session ended): its callback never runs again. A service that cannot
// answer (unreachable, too slow, a reply that does not parse) gives
// temporary_failure, never ok.
#pragma once

#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <vector>

namespace stokend::auth {

struct SaslStart {
  std::string mechanism;               // uppercase, one of mechanisms()
  std::optional<std::string> initial;  // the AUTH line's base64 ("=" is an empty one)
  std::string client_address;          // for the service's logs and penalties
  std::string session_id;              // for the service's logs
  bool secured = false;                // TLS is active (RFC 8314)
};

struct SaslStep {
  enum class Kind { ok, challenge, failure, temporary_failure };
  Kind kind = Kind::temporary_failure;
  std::string text;  // ok: the login; challenge: base64; failure: the login tried, if known
};

using SaslCallback = std::function<void(const SaslStep&)>;

class SaslAuthenticator {
 public:
  virtual ~SaslAuthenticator() = default;
  // The mechanisms to list after "AUTH" in EHLO.
  virtual std::vector<std::string> mechanisms() const = 0;
  virtual std::uint32_t begin(const SaslStart& start, SaslCallback callback) = 0;
  virtual void respond(std::uint32_t id, const std::string& response) = 0;
  virtual void abandon(std::uint32_t id) = 0;
};

}  // namespace stokend::auth
