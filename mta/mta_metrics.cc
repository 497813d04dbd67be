// See mta_metrics.h: the names, help texts and label values.
#include "mta/mta_metrics.h"

#include <openssl/ssl.h>

namespace stokend::mta_metrics {
namespace {

constexpr std::array<const char*, roles> role_names = {"mx", "submission", "submissions",
                                                       "token_server"};
constexpr std::array<const char*, admissions> admission_names = {"admitted", "refused_total_limit",
                                                                 "refused_address_limit"};
constexpr std::array<const char*, rejections> rejection_names = {
    "unknown_recipient",   "unverified_recipient",
    "relay_denied",        "sender_denied",
    "auth_required",       "size",
    "too_many_recipients", "disk_full",
    "bad_content",         "token_refused",
    "local_error",         "too_many_hops"};
constexpr std::array<const char*, auth_mechanisms> mechanism_names = {"plain", "login", "stoken"};
constexpr std::array<const char*, routes> route_names = {"maildir", "lmtp",      "smtp",
                                                         "mx",      "fast_lane", "token_server"};
constexpr std::array<const char*, outcomes> outcome_names = {"sent", "deferred", "bounced"};
constexpr std::array<const char*, fallback_reasons> fallback_names = {
    "no_server",   "dns",      "connect",        "tls", "no_stoken", "token_refused",
    "auth_failed", "rejected", "connection_lost"};
constexpr std::array<const char*, directions> direction_names = {"inbound", "outbound"};
constexpr std::array<const char*, tls_versions> version_names = {"TLSv1.2", "TLSv1.3", "other"};

MtaMetrics make_metrics() {
  metrics::Registry& registry = metrics::default_registry();
  MtaMetrics made;
  for (std::size_t listener = 0; listener < listener_roles; ++listener) {
    for (std::size_t admission = 0; admission < admissions; ++admission) {
      made.connections[listener][admission] = &registry.counter(
          "stokend_connections_total",
          "SMTP connections accepted by a listener, admitted or refused by the connection limits.",
          {{"listener", role_names[listener]}, {"outcome", admission_names[admission]}});
    }
  }
  for (std::size_t listener = 0; listener < listener_roles; ++listener) {
    made.sessions_open[listener] =
        &registry.gauge("stokend_sessions_open", "SMTP sessions open now, by listener.",
                        {{"listener", role_names[listener]}});
  }
  for (std::size_t role = 0; role < roles; ++role) {
    made.sessions[role] = &registry.counter(
        "stokend_sessions_total",
        "SMTP sessions ended, by the role they played (token_server: logged in with AUTH STOKEN).",
        {{"role", role_names[role]}});
  }
  for (std::size_t role = 0; role < roles; ++role) {
    made.accepted[role] = &registry.counter(
        "stokend_messages_accepted_total",
        "Messages accepted: queued (250 after DATA), or stored by the Token Server for at least "
        "one recipient.",
        {{"role", role_names[role]}});
  }
  for (std::size_t reason = 0; reason < rejections; ++reason) {
    made.rejected[reason] = &registry.counter(
        "stokend_messages_rejected_total",
        "Mail refused at MAIL, RCPT or the end of the data, by reason; one per refused command "
        "(a refused recipient counts once).",
        {{"reason", rejection_names[reason]}});
  }
  for (std::size_t mechanism = 0; mechanism < auth_mechanisms; ++mechanism) {
    for (std::size_t success = 0; success < 2; ++success) {
      made.auth[mechanism][success] = &registry.counter(
          "stokend_auth_total", "AUTH attempts that reached a verdict, by mechanism and result.",
          {{"mechanism", mechanism_names[mechanism]},
           {"result", success != 0 ? "success" : "failure"}});
    }
  }
  for (std::size_t route = 0; route < routes; ++route) {
    for (std::size_t outcome = 0; outcome < outcomes; ++outcome) {
      made.deliveries[route][outcome] = &registry.counter(
          "stokend_deliveries_total",
          "Delivery attempts per recipient, by route and outcome (sent, deferred: a temporary "
          "failure, bounced: a permanent one).",
          {{"route", route_names[route]}, {"outcome", outcome_names[outcome]}});
    }
  }
  made.fast_lane_delivered[0] = &registry.counter(
      "stokend_fast_lane_deliveries_total",
      "Recipients the fast lane delivered: 2.1.12, or 2.1.13 with a permanent token exchanged.",
      {{"result", "delivered"}});
  made.fast_lane_delivered[1] = &registry.counter(
      "stokend_fast_lane_deliveries_total",
      "Recipients the fast lane delivered: 2.1.12, or 2.1.13 with a permanent token exchanged.",
      {{"result", "exchanged"}});
  for (std::size_t reason = 0; reason < fallback_reasons; ++reason) {
    made.fast_lane_fallbacks[reason] =
        &registry.counter("stokend_fast_lane_fallbacks_total",
                          "Fast-lane recipients sent the ordinary way instead, by reason.",
                          {{"reason", fallback_names[reason]}});
  }
  for (std::size_t direction = 0; direction < directions; ++direction) {
    for (std::size_t version = 0; version < tls_versions; ++version) {
      made.tls_handshakes[direction][version] = &registry.counter(
          "stokend_tls_handshakes_total",
          "TLS handshakes completed, inbound (listeners) and outbound (client), by protocol "
          "version.",
          {{"direction", direction_names[direction]}, {"version", version_names[version]}});
    }
  }
  for (std::size_t direction = 0; direction < directions; ++direction) {
    made.tls_failures[direction] = &registry.counter("stokend_tls_handshake_failures_total",
                                                     "TLS handshakes that failed or timed out.",
                                                     {{"direction", direction_names[direction]}});
  }
  return made;
}

}  // namespace

TlsVersion tls_version(int ssl_version) {
  switch (ssl_version) {
    case TLS1_2_VERSION:
      return TlsVersion::tls1_2;
    case TLS1_3_VERSION:
      return TlsVersion::tls1_3;
    default:
      return TlsVersion::other;
  }
}

MtaMetrics& mta_metrics() {
  static MtaMetrics instruments = make_metrics();
  return instruments;
}

}  // namespace stokend::mta_metrics
