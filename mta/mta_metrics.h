// The MTA's metrics (common/metrics.h): connections and sessions by
// listener, mail accepted and refused, AUTH, deliveries by route and
// outcome, the fast lane, TLS handshakes. Each metric has a fixed set of
// label values, the enums below; README.md ("Metrics") lists them.
//
// Contract: mta_metrics() registers every metric of this file with every
// label value the first time it is called (the daemon calls it at start, so
// a scrape shows zeros rather than nothing), and returns the same handles
// afterwards. The count_* functions index an array and do one relaxed
// atomic add: no lock, no allocation, no lookup; safe on any thread (the
// built-in Maildir reports from worker threads' completions on the loop).
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>

#include "common/metrics.h"

namespace stokend::mta_metrics {

// Where a session came in: the listener's role, and for submission whether
// it is the implicit-TLS port (RFC 8314 "submissions"). A submission
// session that logged in with AUTH STOKEN played the Token Server.
enum class Role : std::uint8_t { mx, submission, submissions, token_server };
inline constexpr std::size_t listener_roles = 3;  // the first three: listeners
inline constexpr std::size_t roles = 4;

inline Role listener_role(bool mx, bool implicit_tls) {
  return mx ? Role::mx : implicit_tls ? Role::submissions : Role::submission;
}

enum class Admission : std::uint8_t { admitted, refused_total_limit, refused_address_limit };
inline constexpr std::size_t admissions = 3;

// Why mail was refused at MAIL, RCPT or the end of the data.
enum class Rejection : std::uint8_t {
  unknown_recipient,     // 550 5.1.1
  unverified_recipient,  // 450 4.1.1: the next hop could not say
  relay_denied,          // 550 5.7.1
  sender_denied,         // 553 5.7.1: not the logged-in user's / the token's address
  auth_required,         // 530 5.7.0
  size,                  // 552 5.3.4
  too_many_recipients,   // 452 4.5.3
  disk_full,             // 452 4.3.1
  bad_content,           // bare CR/LF, NUL, over-long line in the data
  token_refused,         // 550 5.7.30 at RCPT STOKEN=
  local_error,           // 451: the queue or the token store failed
  too_many_hops,         // 554 5.4.6: more Received fields than limits.max_hops
};
inline constexpr std::size_t rejections = 12;

enum class AuthMechanism : std::uint8_t { plain, login, stoken };
inline constexpr std::size_t auth_mechanisms = 3;

// How a recipient left: the route that took it.
enum class Route : std::uint8_t { maildir, lmtp, smtp, mx, fast_lane, token_server };
inline constexpr std::size_t routes = 6;
// sent: accepted by the mailstore or next hop; deferred: a temporary
// failure (retried; for the Token Server, 4xx to its client); bounced: a
// permanent failure.
enum class Outcome : std::uint8_t { sent, deferred, bounced };
inline constexpr std::size_t outcomes = 3;

// Why a fast-lane recipient went the ordinary way instead.
enum class FastLaneFallback : std::uint8_t {
  no_server,        // no SRV record (nor MX host to try), or none usable
  dns,              // a lookup failed temporarily
  connect,          // no connection to any Token Server
  tls,              // the TLS handshake failed (certificate included)
  no_stoken,        // the server does not announce STOKEN
  token_refused,    // 535 or 550 5.7.30: the token is dropped
  auth_failed,      // another answer to AUTH STOKEN
  rejected,         // the recipient refused in the transaction (4xx, 5xx)
  connection_lost,  // the connection failed during the transaction
};
inline constexpr std::size_t fallback_reasons = 9;

enum class Direction : std::uint8_t { inbound, outbound };
inline constexpr std::size_t directions = 2;
enum class TlsVersion : std::uint8_t { tls1_2, tls1_3, other };
inline constexpr std::size_t tls_versions = 3;
// From OpenSSL's SSL_version() (TLS1_2_VERSION, TLS1_3_VERSION).
TlsVersion tls_version(int ssl_version);

struct MtaMetrics {
  std::array<std::array<metrics::Counter*, admissions>, listener_roles> connections{};
  std::array<metrics::Gauge*, listener_roles> sessions_open{};
  std::array<metrics::Counter*, roles> sessions{};
  std::array<metrics::Counter*, roles> accepted{};
  std::array<metrics::Counter*, rejections> rejected{};
  std::array<std::array<metrics::Counter*, 2>, auth_mechanisms> auth{};  // [failure, success]
  std::array<std::array<metrics::Counter*, outcomes>, routes> deliveries{};
  std::array<metrics::Counter*, 2> fast_lane_delivered{};  // [2.1.12, 2.1.13 exchange]
  std::array<metrics::Counter*, fallback_reasons> fast_lane_fallbacks{};
  std::array<std::array<metrics::Counter*, tls_versions>, directions> tls_handshakes{};
  std::array<metrics::Counter*, directions> tls_failures{};
};

MtaMetrics& mta_metrics();

template <class Enum>
constexpr std::size_t at(Enum value) {
  return static_cast<std::size_t>(value);
}

inline void count_connection(Role listener, Admission admission) {
  mta_metrics().connections[at(listener)][at(admission)]->inc();
}
inline void session_opened(Role listener) { mta_metrics().sessions_open[at(listener)]->add(1); }
// At the session's end, with the role it played.
inline void session_closed(Role listener, Role played) {
  mta_metrics().sessions_open[at(listener)]->add(-1);
  mta_metrics().sessions[at(played)]->inc();
}
inline void count_accepted(Role role) { mta_metrics().accepted[at(role)]->inc(); }
inline void count_rejected(Rejection reason) { mta_metrics().rejected[at(reason)]->inc(); }
inline void count_auth(AuthMechanism mechanism, bool success) {
  mta_metrics().auth[at(mechanism)][success ? 1 : 0]->inc();
}
inline void count_delivery(Route route, Outcome outcome, std::uint64_t recipients = 1) {
  mta_metrics().deliveries[at(route)][at(outcome)]->inc(recipients);
}
inline void count_fast_lane_delivered(bool token_exchanged) {
  mta_metrics().fast_lane_delivered[token_exchanged ? 1 : 0]->inc();
}
inline void count_fast_lane_fallback(FastLaneFallback reason) {
  mta_metrics().fast_lane_fallbacks[at(reason)]->inc();
}
inline void count_tls_handshake(Direction direction, int ssl_version) {
  mta_metrics().tls_handshakes[at(direction)][at(tls_version(ssl_version))]->inc();
}
inline void count_tls_failure(Direction direction) {
  mta_metrics().tls_failures[at(direction)]->inc();
}

}  // namespace stokend::mta_metrics
