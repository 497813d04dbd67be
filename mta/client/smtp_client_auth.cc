// See smtp_client.h. SASL AUTH (RFC 4954) from the client side, for a next
// hop that wants stokend to log in (a smarthost route with an entry in
// delivery.relay_credentials): after the hello over TLS, before the
// connection is ready for mail.
//
// Mechanisms: PLAIN (RFC 4616) when the server offers it, else LOGIN
// (draft-murchison-sasl-login), the two every relay speaks; nothing that
// needs a shared secret of its own. Credentials go only over TLS: without
// it the setup fails (4.7.5) before anything is sent. A refusal is a
// temporary failure (Postfix's smtp_sasl_auth_soft_bounce = yes): the
// message waits in the queue while the operator fixes the password, instead
// of bouncing. Neither the password nor the SASL lines are ever logged.
#include <spdlog/spdlog.h>

#include "common/ascii.h"
#include "common/base64.h"
#include "mta/client/smtp_client.h"

namespace stokend::client {
namespace {

enum AuthStep { plain_response = 0, login_user = 1, login_password = 2 };

// The server's SASL mechanisms (RFC 4954 §3: "AUTH mech1 mech2 ...").
bool offers(const Capabilities& capabilities, std::string_view mechanism) {
  const auto mechanisms = capabilities.parameters("AUTH");
  if (!mechanisms) return false;
  std::string_view rest = *mechanisms;
  while (!rest.empty()) {
    const std::size_t blank = rest.find(' ');
    if (equals_ignoring_case(rest.substr(0, blank), mechanism)) return true;
    if (blank == std::string_view::npos) break;
    rest.remove_prefix(blank + 1);
  }
  return false;
}

}  // namespace

void SmtpClient::finish_setup() {
  if (destination_.auth_login.empty()) return become_ready();
  start_authentication();
}

void SmtpClient::start_authentication() {
  if (!tls_active_) {
    return fail({"4.7.5", "not sending credentials to " + peer_ + " without TLS"});
  }
  if (offers(capabilities_, "PLAIN")) {
    // RFC 4616 §2: authzid NUL authcid NUL passwd, with an empty authzid.
    std::string response;
    response.push_back('\0');
    response += destination_.auth_login;
    response.push_back('\0');
    response += destination_.auth_password;
    write_line("AUTH PLAIN " + encode_base64(response));
    expect("AUTH", settings_.timeouts.command,
           [this](const Reply& reply) { on_auth_reply(reply, plain_response); });
    return;
  }
  if (offers(capabilities_, "LOGIN")) {
    write_line("AUTH LOGIN");
    expect("AUTH", settings_.timeouts.command,
           [this](const Reply& reply) { on_auth_reply(reply, login_user); });
    return;
  }
  fail({"4.7.0", "host " + peer_ + " offers no AUTH mechanism stokend can use (PLAIN, LOGIN)" +
                     (capabilities_.has("AUTH") ? "" : ": no AUTH in its EHLO reply")});
}

void SmtpClient::on_auth_reply(const Reply& reply, int step) {
  if (reply.code == 235) {
    spdlog::debug("client {}: authenticated as {}", peer_, destination_.auth_login);
    return become_ready();
  }
  // RFC 4954 §4: 334 asks for the next response. LOGIN asks for the user
  // name, then the password; anything else is a refusal.
  if (reply.code == 334 && step == login_user) {
    write_line(encode_base64(destination_.auth_login));
    expect("AUTH", settings_.timeouts.command,
           [this](const Reply& next) { on_auth_reply(next, login_password); });
    return;
  }
  if (reply.code == 334 && step == login_password) {
    write_line(encode_base64(destination_.auth_password));
    expect("AUTH", settings_.timeouts.command,
           [this](const Reply& next) { on_auth_reply(next, login_password + 1); });
    return;
  }
  if (reply.code == 334) {
    // A challenge where the mechanism has nothing more to say: RFC 4954 §4
    // lets the client cancel with "*"; the connection is not reused.
    write_line("*");
  }
  fail({as_temporary(reply.enhanced_code, "4.7.0"),
        "SASL authentication as " + destination_.auth_login + " failed at " + peer_ + ": " +
            reply.to_string(),
        reply.code});
}

}  // namespace stokend::client
