// The milters of the session core (see session.h): between the end of the
// data and the queue, the message goes to the milters configured for this
// listener's role (mta/message_filter.h), and the session waits for their
// verdict without reading further input. Then:
// - accept: the possibly changed message is queued, to the possibly
//   changed sender and recipients, and the client hears 250 once it is
//   durable, as without milters;
// - quarantine: likewise, but stored held (stokenctl queue release);
// - discard: 250, and nothing is kept (a milter asked for it; logged);
// - reject, tempfail: the milter's reply, and nothing is kept.
// The Token Server's deliveries never come here: the token is the trust.
#include <arpa/inet.h>
#include <event2/bufferevent.h>
#include <netinet/in.h>
#include <spdlog/spdlog.h>
#include <sys/socket.h>

#include <algorithm>

#include "common/ascii.h"
#include "mta/addresses/local_users.h"
#include "mta/server/session.h"

namespace stokend::server {
namespace {

bool for_role(const MilterConfig& milter, Role role) {
  return role == Role::mx ? milter.mx : milter.submission;
}

}  // namespace

bool Session::has_milters() const {
  if (!context_.filter) return false;
  const auto& milters = context_.config().milters;
  return std::any_of(milters.begin(), milters.end(),
                     [&](const MilterConfig& milter) { return for_role(milter, listener_.role); });
}

std::uint16_t Session::peer_port() const {
  if (!connection_) return 0;
  sockaddr_storage address{};
  socklen_t length = sizeof(address);
  if (::getpeername(bufferevent_getfd(connection_.get()), reinterpret_cast<sockaddr*>(&address),
                    &length) != 0) {
    return 0;
  }
  if (address.ss_family == AF_INET) {
    return ntohs(reinterpret_cast<const sockaddr_in*>(&address)->sin_port);
  }
  if (address.ss_family == AF_INET6) {
    return ntohs(reinterpret_cast<const sockaddr_in6*>(&address)->sin6_port);
  }
  return 0;
}

void Session::filter_message(std::string message_id, std::string message) {
  FilterRequest request;
  for (const MilterConfig& milter : context_.config().milters) {
    if (for_role(milter, listener_.role)) request.milters.push_back(milter);
  }
  request.hostname = context_.config().hostname;
  request.daemon_name = listener_.role == Role::mx ? "stokend-mx" : "stokend-submission";
  request.queue_id = message_id;
  request.client.address = peer_address_;
  // Behind a PROXY header the socket's peer is the load balancer: its port
  // says nothing of the client's.
  request.client.port = listener_.proxy_protocol ? 0 : peer_port();
  request.client.helo = state_.helo_name;
  if (state_.authenticated_user) {
    request.client.auth_user = *state_.authenticated_user;
    request.client.auth_method = sasl_mechanism_;
  }
  if (state_.tls_active && tls_) request.client.tls_version = SSL_get_version(tls_);
  request.sender =
      state_.transaction.sender.is_null ? "" : state_.transaction.sender.mailbox.to_string();
  for (const auto& recipient : state_.transaction.recipients) {
    request.recipients.push_back(recipient.address);
  }
  request.message = std::move(message);
  request.max_message_size = context_.config().limits.max_message_size;
  wait_for_work();
  std::weak_ptr<Session> weak = weak_from_this();
  context_.filter->filter(std::move(request), [weak, message_id](FilterVerdict verdict) {
    if (auto session = weak.lock()) {
      session->message_filtered(message_id, std::move(verdict));
    } else {
      // The client left before the verdict: it never heard 250.
      spdlog::info("message {}: client gone before the milters' verdict; not queued", message_id);
    }
  });
}

void Session::message_filtered(const std::string& message_id, FilterVerdict verdict) {
  using Action = FilterVerdict::Action;
  switch (verdict.action) {
    case Action::reject:
    case Action::tempfail:
      reset_transaction();
      reply_lines(verdict.code, verdict.text);
      resume_reading();
      return;
    case Action::discard:
      // Sendmail's and Postfix's discard: the client hears success.
      spdlog::info("message {}: discarded by {}", message_id, verdict.reason);
      reset_transaction();
      reply(250, "2.0.0", "Ok: discarded");
      resume_reading();
      return;
    case Action::accept:
    case Action::quarantine:
      break;
  }
  Transaction& transaction = state_.transaction;
  // The milters may have changed the sender (SMFIR_CHGFROM) and the
  // recipients (SMFIR_ADDRCPT, SMFIR_DELRCPT). A recipient the client
  // gave keeps its DSN requests; an added one of a local domain is found
  // among the users like any RCPT.
  if (verdict.sender.empty()) {
    transaction.sender = message::Path{true, {}, {}};
  } else if (auto mailbox = message::parse_mailbox(verdict.sender, true)) {
    transaction.sender = message::Path{false, {}, std::move(*mailbox)};
  }
  std::vector<AcceptedRecipient> recipients;
  for (const std::string& address : verdict.recipients) {
    auto known = std::find_if(transaction.recipients.begin(), transaction.recipients.end(),
                              [&](const AcceptedRecipient& recipient) {
                                return equals_ignoring_case(recipient.address, address);
                              });
    if (known != transaction.recipients.end()) {
      recipients.push_back(*known);
      continue;
    }
    AcceptedRecipient added{address, false, std::nullopt, {}};
    if (auto mailbox = message::parse_mailbox(address, true);
        mailbox && !mailbox->domain_is_literal &&
        context_.config().is_local_domain(mailbox->domain)) {
      added.local = true;
      context_.users.refresh_if_changed();
      const std::string& delimiters = context_.config().recipient_delimiter;
      if (const User* user =
              addresses::find_local_user(context_.users, mailbox->normalized(), delimiters))
        added.address = addresses::delivery_address(*user, mailbox->normalized(), delimiters);
    }
    spdlog::info("message {}: recipient <{}> added by a milter", message_id, added.address);
    recipients.push_back(std::move(added));
  }
  transaction.recipients = std::move(recipients);
  const bool hold = verdict.action == Action::quarantine;
  if (hold) spdlog::info("message {}: quarantined: {}", message_id, verdict.reason);
  enqueue(message_id, std::move(verdict.message), hold);
}

}  // namespace stokend::server
