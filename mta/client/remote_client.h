// The Remote Client (DESIGN.md, rfcdraft/ §7): delivery of one message to
// recipients of one remote domain through that domain's Token Server, with
// the tokens the caller found in the sender's wallet.
//
// Steps: find the Token Server by SRV (_submissions._tcp, then
// _submission._tcp, RFC 6186 / RFC 8314 §5.1; with mx_fallback, the
// domain's MX hosts on mx_fallback_port with implicit TLS when neither is
// published); connect with TLS required and the certificate verified
// against the SRV target's name; LHLO; AUTH STOKEN with the first
// recipient's token (a 535 drops that recipient and tries the next one's);
// MAIL FROM the sender; one RCPT per recipient with STOKEN= and MYSTOKEN=;
// DATA; one LMTP reply per recipient.
//
// Contract: as FastLane (fast_lane.h). Delivered means a 2xx reply after
// DATA (RFC 2033 §4.2); everything else falls back — no SRV record, DNS
// failure, connection or TLS failure, no STOKEN in the LHLO reply, any
// refusal.
//
// Connections are pooled per (server, sender): AUTH STOKEN binds a session
// to the sender (the token's remote address), so a warm session serves the
// sender's next message to any recipient of the domain without a new TLS
// handshake or AUTH. Every wait has the pool's deadlines (ClientTimeouts).
//
// A connection lost after the end of data was sent falls back like any
// other failure: the Token Server may have stored the message (the
// duplicate window of RFC 5321 §6.1, which MX delivery has as well); the
// result says so in its reply.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "dns/resolver.h"
#include "mta/client/connection_pool.h"
#include "mta/client/fast_lane.h"

namespace stokend::client {

struct FastLaneSettings {
  bool mx_fallback = false;
  std::uint16_t mx_fallback_port = 465;
};

class RemoteClient final : public FastLane {
 public:
  // The pool's client settings must carry a TLS context with the trust
  // anchors for Token Server certificates.
  RemoteClient(ConnectionPool& pool, dns::Resolver& resolver, FastLaneSettings settings);

  void deliver(const std::string& domain, const std::string& sender,
               std::vector<FastLaneRecipient> recipients,
               std::shared_ptr<const std::string> message, Done done) override;

 private:
  struct Attempt;
  void servers_found(std::shared_ptr<Attempt> attempt);
  void try_next_server(std::shared_ptr<Attempt> attempt);
  void try_next_address(std::shared_ptr<Attempt> attempt);
  void connected(std::shared_ptr<Attempt> attempt, std::shared_ptr<SmtpClient> connection);
  void authenticate(std::shared_ptr<Attempt> attempt, std::shared_ptr<SmtpClient> connection);
  void send_message(std::shared_ptr<Attempt> attempt, std::shared_ptr<SmtpClient> connection);
  void finish(std::shared_ptr<Attempt> attempt);

  ConnectionPool& pool_;
  dns::Resolver& resolver_;
  FastLaneSettings settings_;
};

// The words after the enhanced code of a 2.1.12 / 2.1.13 reply (rfcdraft/
// §5.4): "<addr> <delivery-id> ..." or "<addr> <permanent-token>
// <delivery-id> ...". Empty fields when the text does not have that shape.
struct TokenReplyFields {
  std::string delivery_id;
  std::string permanent_token;
};
TokenReplyFields parse_token_reply(const std::string& enhanced_code, const std::string& text);

}  // namespace stokend::client
