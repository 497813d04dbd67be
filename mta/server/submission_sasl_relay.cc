// The submission role's AUTH through a provider's Dovecot (auth: backend
// dovecot; see submission_role.h): the client's AUTH command and each of its
// lines go to the SASL service (mta/auth/sasl_authenticator.h) as they are,
// Dovecot's challenges come back as 334 lines, and its answer ends the
// exchange: 235 as the login Dovecot names, 535 after the failure delay, or
// 454 4.7.0 when Dovecot could not answer (RFC 4954 §6). The replies are
// listed in REPLIES.md. Neither the client's lines nor the challenges are
// logged.
#include <spdlog/spdlog.h>

#include <algorithm>

#include "common/ascii.h"
#include "mta/mta_metrics.h"
#include "mta/server/server_context.h"
#include "mta/server/submission_role.h"

namespace stokend::server {
namespace {

void count(const std::string& mechanism, bool success) {
  // The metric has fixed labels: the mechanisms stokend itself knows.
  if (mechanism == "PLAIN") mta_metrics::count_auth(mta_metrics::AuthMechanism::plain, success);
  if (mechanism == "LOGIN") mta_metrics::count_auth(mta_metrics::AuthMechanism::login, success);
}

}  // namespace

void SubmissionRole::relay_begin(std::string_view mechanism, std::string_view initial) {
  const std::string name = ascii_uppercase(mechanism);
  const auto offered = sasl_->mechanisms();
  if (name.empty() || std::find(offered.begin(), offered.end(), name) == offered.end()) {
    return core_.reply_error(504, "5.5.4", "Unrecognized authentication mechanism");
  }
  auth_mechanism_ = AuthMechanism::relayed;
  relay_mechanism_ = name;
  auth::SaslStart start;
  start.mechanism = name;
  if (!initial.empty()) start.initial = std::string(initial);
  start.session_id = core_.id();
  start.secured = core_.state().tls_active;
  core_.wait_for_work();
  std::weak_ptr<SessionCore> weak = core_.weak();
  // This role lives as long as its session: `this` is safe once the session is.
  relay_id_ = sasl_->begin(start, [this, weak](const auth::SaslStep& step) {
    if (auto session = weak.lock()) relay_step(step);
  });
}

void SubmissionRole::relay_response(const std::string& line) {
  if (!relay_id_) return core_.reply_error(503, "5.5.1", "No authentication in progress");
  core_.wait_for_work();
  sasl_->respond(*relay_id_, line);
}

void SubmissionRole::relay_step(const auth::SaslStep& step) {
  if (step.kind == auth::SaslStep::Kind::challenge) {
    core_.ask_sasl_response(step.text);
    return core_.resume_reading();
  }
  relay_id_.reset();
  auth_mechanism_ = AuthMechanism::none;
  switch (step.kind) {
    case auth::SaslStep::Kind::ok:
      count(relay_mechanism_, true);
      return core_.authentication_succeeded(ascii_lowercase(step.text));
    case auth::SaslStep::Kind::failure:
      count(relay_mechanism_, false);
      return core_.authentication_failed(step.text.empty() ? "unknown" : step.text);
    default:
      // RFC 4954 §6: 454 4.7.0, the client may try again later.
      spdlog::warn("session {}: AUTH {} not checked: the authentication service did not answer",
                   core_.id(), relay_mechanism_);
      core_.reply(454, "4.7.0", "Temporary authentication failure");
      return core_.resume_reading();
  }
}

void SubmissionRole::relay_end() {
  if (relay_id_ && sasl_) sasl_->abandon(*relay_id_);
  relay_id_.reset();
}

}  // namespace stokend::server
