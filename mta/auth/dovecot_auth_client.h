// DovecotAuthClient: SMTP AUTH through a provider's Dovecot, as Postfix's
// smtpd_sasl_type = dovecot does it. One connection to Dovecot's auth client
// socket (service auth { unix_listener auth-client or inet_listener }),
// shared by every session, each exchange under its own request id
// (dovecot_protocol.h has the lines).
//
// Contract (SaslAuthenticator, sasl_authenticator.h):
// - Connects at start(), and again by itself after a failure with a
//   back-off (dovecot_link.h). An exchange begun while the handshake is not
//   complete waits for it within its deadline.
// - Every step Dovecot is asked for has a deadline (auth.timeout): on expiry,
//   on a lost connection or a failed connect (one begun during the back-off
//   waits for the next attempt), and on a reply that does not parse (logged,
//   and the connection is started over), the step is a temporary failure;
//   FAIL with "temp" too. Never an ok without Dovecot's OK.
// - mechanisms(): those of Dovecot's last handshake that a text exchange
//   can carry (relayable_mechanism()), in Dovecot's order; before any
//   handshake, PLAIN and LOGIN, so that AUTH is offered and answered 454
//   while Dovecot is away.
// - The client's responses go to Dovecot as they are and are never logged;
//   nor are Dovecot's challenges.
#pragma once

#include <chrono>
#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "common/deferred_calls.h"
#include "common/event_handles.h"
#include "mta/auth/dovecot_link.h"
#include "mta/auth/sasl_authenticator.h"

namespace stokend::auth {

class DovecotAuthClient final : public SaslAuthenticator {
 public:
  DovecotAuthClient(event_base* base, DovecotEndpoint endpoint, std::chrono::milliseconds timeout);
  ~DovecotAuthClient() override;

  void start() { link_.open(); }

  std::vector<std::string> mechanisms() const override { return mechanisms_; }
  std::uint32_t begin(const SaslStart& start, SaslCallback callback) override;
  void respond(std::uint32_t id, const std::string& response) override;
  void abandon(std::uint32_t id) override;

  // Exchanges in progress, for tests.
  std::size_t exchanges() const { return requests_.size(); }

 private:
  enum class Waiting { to_send, server, client, dead };
  struct Request {
    DovecotAuthClient* owner = nullptr;
    std::uint32_t id = 0;
    Waiting waiting = Waiting::to_send;
    std::string line;  // to_send: the AUTH line to send once the handshake is done
    SaslCallback callback;
    EventPtr deadline;
    std::shared_ptr<bool> live = std::make_shared<bool>(true);
  };

  static void on_deadline(evutil_socket_t, short, void* request);
  void on_open();
  void on_line(std::string_view line);
  void on_close();
  void arm_deadline(Request& request);
  // Delivers a step (later, through deferred_); a final step ends the request.
  void finish(std::uint32_t id, SaslStep step);
  void fail_soon(SaslCallback callback);
  std::uint32_t next_id();

  event_base* base_;
  std::chrono::milliseconds timeout_;
  DovecotLink link_;
  DeferredCalls deferred_;
  bool handshake_done_ = false;
  std::vector<std::string> handshake_mechanisms_;  // being collected from MECH lines
  std::vector<std::string> mechanisms_{"PLAIN", "LOGIN"};
  std::map<std::uint32_t, std::unique_ptr<Request>> requests_;
  std::uint32_t last_id_ = 0;
};

}  // namespace stokend::auth
