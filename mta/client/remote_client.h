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
// Two dialects (rfcdraft/ §10 and Appendix D), chosen per recipient domain
// by FastLaneSettings::dialects: lhlo is the form above; ehlo-sync is the
// form of Dovecot's COI plugin: EHLO, AUTH STOKEN only when the EHLO reply
// lists it under AUTH (the plugin has no such mechanism), MAIL FROM with the
// valueless SYNC parameter, the same RCPT parameters, and the same one reply
// per recipient after DATA. automatic starts with LHLO; a server that
// refuses LHLO with a 5xx is asked again with EHLO on a new connection and
// taken as a Token Server when that reply announces STOKEN (as the plugin
// does). What a server answered is remembered per server (host and port),
// so the next attempt starts in the dialect that worked.
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
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "dns/resolver.h"
#include "mta/client/connection_pool.h"
#include "mta/client/fast_lane.h"
#include "mta/defaults.h"

namespace stokend::client {

struct FastLaneSettings {
  bool mx_fallback = defaults::fast_lane_mx_fallback;
  std::uint16_t mx_fallback_port = defaults::fast_lane_mx_fallback_port;
  // Recipient domain (lowercase) or "*" -> dialect; the rest: automatic.
  std::map<std::string, TokenDialect, std::less<>> dialects;
  std::size_t max_learnt_dialects = defaults::fast_lane_learnt_dialects;

  TokenDialect dialect_for(const std::string& domain) const;
};

// "auto", "lhlo", "ehlo-sync": as the configuration and stokenctl spell it.
const char* dialect_name(TokenDialect dialect);

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
  void try_address(std::shared_ptr<Attempt> attempt, const std::string& address, bool ehlo_sync);
  void learn(const std::shared_ptr<Attempt>& attempt, bool ehlo_sync);
  void connected(std::shared_ptr<Attempt> attempt, std::shared_ptr<SmtpClient> connection);
  void authenticate(std::shared_ptr<Attempt> attempt, std::shared_ptr<SmtpClient> connection);
  void send_message(std::shared_ptr<Attempt> attempt, std::shared_ptr<SmtpClient> connection);
  void finish(std::shared_ptr<Attempt> attempt);

  ConnectionPool& pool_;
  dns::Resolver& resolver_;
  FastLaneSettings settings_;
  // "host:port" -> the server spoke the EHLO form (true) or LHLO (false),
  // as last found out by an automatic attempt.
  std::map<std::string, bool> learnt_dialects_;

 public:
  // For tests and monitoring: what an automatic attempt would start with
  // for "host:port"; nullopt when nothing was learnt yet.
  std::optional<TokenDialect> learnt_dialect(const std::string& server) const;
};

// The words after the enhanced code of a 2.1.12 / 2.1.13 reply (rfcdraft/
// §5.4): "<addr> <delivery-id> ..." or "<addr> <permanent-token>
// <delivery-id> ...". Empty fields when the text does not have that shape.
struct TokenReplyFields {
  std::string delivery_id;
  std::string permanent_token;
};
TokenReplyFields parse_token_reply(const std::string& enhanced_code, const std::string& text);

// AUTH STOKEN with its initial response (rfcdraft/ §7.3.1): base64 of the
// recipient the token was issued for, NUL, and the token.
std::string auth_stoken_command(const std::string& recipient, const std::string& token);

}  // namespace stokend::client
