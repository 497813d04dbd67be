// See smtp_client.h. Session setup on a connected SmtpClient: the greeting,
// EHLO/LHLO (HELO fallback for SMTP, RFC 5321 §4.1.4; LHLO, RFC 2033 §4.1),
// STARTTLS as the destination's TLS policy asks (RFC 3207) or implicit TLS
// (RFC 8314 §3.3), and the hello again over TLS; then the client is ready.
#include <event2/buffer.h>
#include <event2/bufferevent_ssl.h>
#include <spdlog/spdlog.h>

#include "common/openssl_text.h"
#include "mta/client/client_tls.h"
#include "mta/client/smtp_client.h"
#include "mta/mta_metrics.h"

namespace stokend::client {

void SmtpClient::expect_greeting() {
  expect("greeting", settings_.timeouts.greeting,
         [this](const Reply& reply) { on_greeting(reply); });
}

void SmtpClient::on_greeting(const Reply& reply) {
  greeted_ = true;
  if (reply.code != 220) {
    return fail({as_temporary(reply.enhanced_code, "4.3.0"),
                 "host " + peer_ + " refused to talk to us: " + reply.to_string(), reply.code});
  }
  send_hello();
}

void SmtpClient::send_hello() {
  // RFC 2033 §4.1: LMTP has LHLO where SMTP has EHLO.
  bool lmtp = destination_.protocol == Protocol::lmtp;
  write_line((lmtp ? "LHLO " : "EHLO ") + settings_.helo_name);
  expect(lmtp ? "LHLO" : "EHLO", settings_.timeouts.command,
         [this](const Reply& reply) { on_hello(reply); });
}

void SmtpClient::on_hello(const Reply& reply) {
  if (reply.is_positive()) {
    capabilities_ = Capabilities::from_hello_reply(reply);
    return after_hello();
  }
  if (destination_.protocol == Protocol::smtp && reply.is_permanent_failure() && !tried_helo_) {
    // RFC 5321 §4.1.4: a server that does not know EHLO gets HELO.
    tried_helo_ = true;
    write_line("HELO " + settings_.helo_name);
    expect("HELO", settings_.timeouts.command, [this](const Reply& helo) { on_helo(helo); });
    return;
  }
  Failure refused{as_temporary(reply.enhanced_code, "4.3.0"),
                  peer_ + " refused our " +
                      (destination_.protocol == Protocol::lmtp ? "LHLO" : "EHLO") + ": " +
                      reply.to_string(),
                  reply.code};
  refused.hello_refused = reply.is_permanent_failure();
  fail(std::move(refused));
}

void SmtpClient::on_helo(const Reply& reply) {
  if (!reply.is_positive()) {
    return fail({as_temporary(reply.enhanced_code, "4.3.0"),
                 peer_ + " refused our HELO: " + reply.to_string(), reply.code});
  }
  capabilities_ = Capabilities{};  // HELO: no service extensions
  after_hello();
}

void SmtpClient::after_hello() {
  TlsPolicy policy = destination_.tls_policy;
  if (tls_active_ || policy == TlsPolicy::never) return finish_setup();
  if (capabilities_.starttls && settings_.tls_context) {
    write_line("STARTTLS");
    expect("STARTTLS", settings_.timeouts.command,
           [this](const Reply& reply) { on_starttls(reply); });
    return;
  }
  if (policy == TlsPolicy::required) {
    // RFC 3207 §4.1 leaves the decision to the client; the wording follows
    // the one mail administrators know from Postfix.
    if (!capabilities_.starttls) {
      return fail({"4.7.4", "TLS is required, but was not offered by host " + peer_});
    }
    return fail({"4.7.5", "TLS is required, but no client TLS context is configured"});
  }
  finish_setup();  // opportunistic, nothing to use: plaintext
}

void SmtpClient::on_starttls(const Reply& reply) {
  if (reply.code == 220) return start_tls();
  if (destination_.tls_policy == TlsPolicy::required) {
    return fail({"4.7.4",
                 "TLS is required, but " + peer_ + " refused STARTTLS: " + reply.to_string(),
                 reply.code});
  }
  spdlog::info("client {}: STARTTLS refused ({}), continuing without TLS", peer_,
               reply.to_string());
  finish_setup();
}

void SmtpClient::start_tls() {
  // RFC 3207 §4.2 and CVE-2011-0411, from the client side: replies that
  // arrived in plaintext after the 220 must not be read as if they came
  // through TLS. Dropping the plaintext bufferevent discards them. (With
  // implicit TLS nothing can have arrived yet.)
  if (!settings_.tls_context)
    return fail({"4.7.5", "TLS is required, but no client TLS context is configured"});
  if (std::size_t injected = evbuffer_get_length(bufferevent_get_input(connection_.get()))) {
    spdlog::warn("client {}: discarded {} octets sent after the STARTTLS reply", peer_, injected);
  }
  release_bufferevent();
  std::string error;
  SslPtr ssl = new_client_tls(settings_.tls_context, destination_.tls_server_name,
                              destination_.verify_certificate, error);
  if (!ssl) return fail({"4.7.5", "TLS with " + peer_ + ": " + error});
  // From here the bufferevent owns the TLS state and the socket.
  bufferevent* raw = bufferevent_openssl_socket_new(
      base_, socket_.get(), ssl.get(), BUFFEREVENT_SSL_CONNECTING, BEV_OPT_CLOSE_ON_FREE);
  if (!raw) return fail({"4.7.5", "cannot start TLS with " + peer_});
  tls_ = ssl.release();
  socket_.release();
  bufferevent_openssl_set_allow_dirty_shutdown(raw, 1);
  phase_ = Phase::tls_handshake;
  install_bufferevent(raw);
  deadline_.arm(settings_.timeouts.tls_handshake);
}

void SmtpClient::tls_established() {
  deadline_.cancel();
  tls_active_ = true;
  mta_metrics::count_tls_handshake(mta_metrics::Direction::outbound, SSL_version(tls_));
  phase_ = Phase::setting_up;
  spdlog::debug("client {}: TLS established: {}", peer_, describe_tls(tls_));
  if (settings_.transcript) settings_.transcript('*', "TLS started: " + describe_tls(tls_));
  if (!greeted_) return expect_greeting();  // implicit TLS
  // RFC 3207 §4.2: forget what the server said in plaintext and ask again.
  capabilities_ = Capabilities{};
  tried_helo_ = false;
  send_hello();
}

void SmtpClient::become_ready() {
  phase_ = Phase::ready;
  spdlog::debug("client {}: ready ({}, tls={}, pipelining={})", peer_,
                destination_.protocol == Protocol::lmtp ? "LHLO"
                : tried_helo_                           ? "HELO"
                                                        : "EHLO",
                tls_active_ ? "yes" : "no", capabilities_.pipelining ? "yes" : "no");
  auto done = std::exchange(connect_done_, {});
  if (done) done(std::nullopt);
}

}  // namespace stokend::client
