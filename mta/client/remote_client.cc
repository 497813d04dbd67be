// See remote_client.h.
#include "mta/client/remote_client.h"

#include <spdlog/spdlog.h>

#include <sstream>

#include "common/ascii.h"
#include "common/base64.h"
#include "dns/mail_exchangers.h"
#include "dns/submission_servers.h"
#include "mta/mta_metrics.h"

namespace stokend::client {

struct RemoteClient::Attempt {
  std::string domain;
  std::string sender;
  std::vector<FastLaneRecipient> recipients;
  std::shared_ptr<const std::string> message;
  Done done;

  std::vector<FastLaneResult> results;
  std::vector<bool> settled;  // per recipient: its result is final

  std::vector<dns::SubmissionServer> servers;
  std::size_t next_server = 0;
  dns::SubmissionServer server;        // the one being tried
  std::vector<std::string> addresses;  // of that server
  std::size_t next_address = 0;
  std::string server_text;                         // "host[address]:port"
  std::string last_failure;                        // why the last server could not be used
  std::size_t auth_candidate = 0;                  // the recipient whose token AUTH STOKEN tries
  TokenDialect dialect = TokenDialect::automatic;  // configured for the domain
  bool ehlo_sync = false;                          // the connection being tried speaks EHLO + SYNC
  std::string server_key;                          // "host:port", for the learnt dialects
  std::string lhlo_refusal;  // automatic: why LHLO was refused before EHLO was tried

  // What last_failure was, for the metrics (mta_metrics.h).
  mta_metrics::FastLaneFallback last_failure_kind = mta_metrics::FastLaneFallback::no_server;

  // Settles every recipient not yet settled as a fall back, with reason
  // (kind: for the metrics, mta_metrics.h).
  void fall_back_all(const std::string& reason, mta_metrics::FastLaneFallback kind) {
    for (std::size_t i = 0; i < results.size(); ++i) {
      if (settled[i]) continue;
      mta_metrics::count_fast_lane_fallback(kind);
      results[i].outcome = FastLaneResult::Outcome::fall_back;
      results[i].reply = reason;
      results[i].server = server_text;
      settled[i] = true;
    }
  }
};

namespace {

bool is_token_refusal(int code, const std::string& enhanced_code) {
  return code == 535 || (code == 550 && enhanced_code == "5.7.30");
}

}  // namespace

std::string auth_stoken_command(const std::string& recipient, const std::string& token) {
  std::string response = recipient;
  response.push_back('\0');
  response += token;
  return "AUTH STOKEN " + encode_base64(response);
}

TokenDialect FastLaneSettings::dialect_for(const std::string& domain) const {
  auto found = dialects.find(ascii_lowercase(domain));
  if (found == dialects.end()) found = dialects.find("*");
  return found == dialects.end() ? defaults::fast_lane_dialect : found->second;
}

const char* dialect_name(TokenDialect dialect) {
  switch (dialect) {
    case TokenDialect::lhlo:
      return "lhlo";
    case TokenDialect::ehlo_sync:
      return "ehlo-sync";
    case TokenDialect::automatic:
      break;
  }
  return "auto";
}

std::optional<TokenDialect> RemoteClient::learnt_dialect(const std::string& server) const {
  auto found = learnt_dialects_.find(server);
  if (found == learnt_dialects_.end()) return std::nullopt;
  return found->second ? TokenDialect::ehlo_sync : TokenDialect::lhlo;
}

void RemoteClient::learn(const std::shared_ptr<Attempt>& attempt, bool ehlo_sync) {
  if (attempt->dialect != TokenDialect::automatic) return;
  if (learnt_dialects_.size() >= settings_.max_learnt_dialects &&
      !learnt_dialects_.count(attempt->server_key)) {
    learnt_dialects_.clear();  // bounded memory; each server is learnt again at one connection
  }
  learnt_dialects_[attempt->server_key] = ehlo_sync;
}

TokenReplyFields parse_token_reply(const std::string& enhanced_code, const std::string& text) {
  TokenReplyFields fields;
  std::istringstream words(text);
  std::string address, first, second;
  words >> address >> first >> second;
  if (address.size() < 2 || address.front() != '<' || address.back() != '>') return fields;
  if (enhanced_code == "2.1.12") {
    fields.delivery_id = first;
  } else if (enhanced_code == "2.1.13" && !second.empty()) {
    fields.permanent_token = first;
    fields.delivery_id = second;
  }
  return fields;
}

RemoteClient::RemoteClient(ConnectionPool& pool, dns::Resolver& resolver, FastLaneSettings settings)
    : pool_(pool), resolver_(resolver), settings_(settings) {}

void RemoteClient::deliver(const std::string& domain, const std::string& sender,
                           std::vector<FastLaneRecipient> recipients,
                           std::shared_ptr<const std::string> message, Done done) {
  auto attempt = std::make_shared<Attempt>();
  attempt->domain = domain;
  attempt->sender = sender;
  attempt->recipients = std::move(recipients);
  attempt->message = std::move(message);
  attempt->done = std::move(done);
  attempt->dialect = settings_.dialect_for(domain);
  attempt->results.resize(attempt->recipients.size());
  attempt->settled.assign(attempt->recipients.size(), false);
  dns::find_submission_servers(resolver_, domain, [this, attempt](dns::SubmissionServers found) {
    if (found.result == dns::SubmissionServers::ok) {
      attempt->servers = std::move(found.servers);
      return servers_found(attempt);
    }
    if (found.result == dns::SubmissionServers::temporary_failure || !settings_.mx_fallback) {
      const bool none = found.result == dns::SubmissionServers::not_available;
      attempt->fall_back_all(
          none ? "no submission SRV record for " + attempt->domain
               : "SRV lookup for " + attempt->domain + ": " + found.error,
          none ? mta_metrics::FastLaneFallback::no_server : mta_metrics::FastLaneFallback::dns);
      return finish(attempt);
    }
    // DESIGN.md: a client MAY try the MX host when no SRV is published.
    dns::find_mail_exchangers(
        resolver_, attempt->domain, [this, attempt](dns::MailExchangers exchangers) {
          if (exchangers.result != dns::MailExchangers::ok) {
            attempt->fall_back_all("no submission SRV record for " + attempt->domain +
                                       ", and no MX host to try: " + exchangers.error,
                                   mta_metrics::FastLaneFallback::no_server);
            return finish(attempt);
          }
          for (const auto& exchanger : exchangers.hosts) {
            attempt->servers.push_back({exchanger.host, settings_.mx_fallback_port, true});
          }
          servers_found(attempt);
        });
  });
}

void RemoteClient::servers_found(std::shared_ptr<Attempt> attempt) {
  attempt->next_server = 0;
  try_next_server(std::move(attempt));
}

void RemoteClient::try_next_server(std::shared_ptr<Attempt> attempt) {
  if (attempt->next_server >= attempt->servers.size()) {
    attempt->fall_back_all(attempt->last_failure.empty()
                               ? "no usable Token Server for " + attempt->domain
                               : attempt->last_failure,
                           attempt->last_failure_kind);
    return finish(attempt);
  }
  attempt->server = attempt->servers[attempt->next_server++];
  resolver_.resolve_addresses(
      attempt->server.host, [this, attempt](dns::Answer<std::string> answer) {
        if (answer.status != dns::Status::ok) {
          attempt->last_failure =
              "cannot resolve Token Server " + attempt->server.host + ": " + answer.error;
          attempt->last_failure_kind = mta_metrics::FastLaneFallback::dns;
          return try_next_server(attempt);
        }
        attempt->addresses = std::move(answer.records);
        attempt->next_address = 0;
        try_next_address(attempt);
      });
}

void RemoteClient::try_next_address(std::shared_ptr<Attempt> attempt) {
  if (attempt->next_address >= attempt->addresses.size()) return try_next_server(attempt);
  const std::string address = attempt->addresses[attempt->next_address++];
  attempt->server_key = attempt->server.host + ":" + std::to_string(attempt->server.port);
  bool ehlo_sync = attempt->dialect == TokenDialect::ehlo_sync;
  if (attempt->dialect == TokenDialect::automatic) {
    auto learnt = learnt_dialects_.find(attempt->server_key);
    ehlo_sync = learnt != learnt_dialects_.end() && learnt->second;
  }
  try_address(std::move(attempt), address, ehlo_sync);
}

void RemoteClient::try_address(std::shared_ptr<Attempt> attempt, const std::string& address,
                               bool ehlo_sync) {
  attempt->ehlo_sync = ehlo_sync;
  // The EHLO form is SMTP with per-recipient replies asked for by SYNC
  // (rfcdraft/ §10); the draft's form is LMTP after LHLO (§7.2).
  Destination destination =
      Destination::tcp(ehlo_sync ? Protocol::smtp : Protocol::lmtp, address, attempt->server.port);
  // rfcdraft/ §7.2: TLS always, the certificate checked against the SRV
  // target (RFC 6186 §6), never plaintext.
  destination.tls_policy = TlsPolicy::required;
  destination.verify_certificate = true;
  destination.tls_server_name = attempt->server.host;
  destination.implicit_tls = attempt->server.implicit_tls;
  destination.session_owner = attempt->sender;
  attempt->server_text =
      attempt->server.host + "[" + address + "]:" + std::to_string(attempt->server.port);
  if (!ehlo_sync) attempt->lhlo_refusal.clear();
  pool_.acquire(
      destination, [this, attempt, address, ehlo_sync](std::shared_ptr<SmtpClient> connection,
                                                       std::optional<Failure> failure) {
        if (failure) {
          if (failure->hello_refused && attempt->dialect == TokenDialect::automatic) {
            // rfcdraft/ Appendix D: a server that does not know LHLO may still
            // be a Token Server of the EHLO form; ask it with EHLO. One that
            // refuses the EHLO it was remembered for is asked with LHLO next.
            learnt_dialects_.erase(attempt->server_key);
            if (!ehlo_sync) {
              attempt->lhlo_refusal = failure->reason;
              return try_address(attempt, address, true);
            }
          }
          attempt->last_failure = "Token Server " + attempt->server_text + ": " + failure->reason;
          attempt->last_failure_kind = failure->tls_failed ? mta_metrics::FastLaneFallback::tls
                                                           : mta_metrics::FastLaneFallback::connect;
          return try_next_address(attempt);
        }
        connected(attempt, std::move(connection));
      });
}

void RemoteClient::connected(std::shared_ptr<Attempt> attempt,
                             std::shared_ptr<SmtpClient> connection) {
  // rfcdraft/ §7.2: a server that does not announce STOKEN after LHLO
  // under TLS is not a Token Server; fall back at once. The EHLO form is
  // recognised by STOKEN in the EHLO reply, as Dovecot's plugin announces
  // it; a server configured as ehlo-sync is taken at its word (a server
  // that follows the draft accepts SYNC without announcing STOKEN there).
  const bool announced = connection->capabilities().has("STOKEN");
  if (!announced && attempt->dialect != TokenDialect::ehlo_sync) {
    pool_.release(connection, true);
    learnt_dialects_.erase(attempt->server_key);  // the next attempt starts with LHLO again
    attempt->fall_back_all("Token Server " + attempt->server_text + ": " +
                               (attempt->lhlo_refusal.empty() ? "" : attempt->lhlo_refusal + "; ") +
                               "does not announce STOKEN" +
                               (attempt->ehlo_sync ? " after EHLO" : ""),
                           mta_metrics::FastLaneFallback::no_stoken);
    return finish(attempt);
  }
  learn(attempt, attempt->ehlo_sync);
  if (connection->authenticated()) return send_message(attempt, std::move(connection));
  // rfcdraft/ §10: AUTH STOKEN is optional in the EHLO form; without it
  // each RCPT's token is checked against the pair alone.
  if (attempt->ehlo_sync && !connection->capabilities().offers_sasl("STOKEN")) {
    return send_message(attempt, std::move(connection));
  }
  attempt->auth_candidate = 0;
  authenticate(attempt, std::move(connection));
}

void RemoteClient::authenticate(std::shared_ptr<Attempt> attempt,
                                std::shared_ptr<SmtpClient> connection) {
  std::size_t& candidate = attempt->auth_candidate;
  while (candidate < attempt->recipients.size() && attempt->settled[candidate]) ++candidate;
  if (candidate >= attempt->recipients.size()) {
    pool_.release(connection, true);
    return finish(attempt);
  }
  const FastLaneRecipient& recipient = attempt->recipients[candidate];
  connection->send_command(
      auth_stoken_command(recipient.address, recipient.token),
      [this, attempt, connection](CommandResult result) mutable {
        std::size_t index = attempt->auth_candidate;
        if (!result.reply) {
          pool_.release(connection, false);
          attempt->fall_back_all("AUTH STOKEN at " + attempt->server_text + ": " +
                                     (result.failure ? result.failure->reason : "no reply"),
                                 mta_metrics::FastLaneFallback::connection_lost);
          return finish(attempt);
        }
        const Reply& reply = *result.reply;
        if (reply.code == 235) {
          connection->set_authenticated();
          return send_message(attempt, std::move(connection));
        }
        if (is_token_refusal(reply.code, reply.enhanced_code)) {
          // This token is no good; another recipient's may be.
          FastLaneResult& refused = attempt->results[index];
          refused.outcome = FastLaneResult::Outcome::fall_back;
          refused.token_refused = true;
          refused.reply = reply.to_string();
          refused.server = attempt->server_text;
          attempt->settled[index] = true;
          mta_metrics::count_fast_lane_fallback(mta_metrics::FastLaneFallback::token_refused);
          return authenticate(attempt, std::move(connection));
        }
        pool_.release(connection, reply.code != 421);  // 421: the server is closing
        attempt->fall_back_all("AUTH STOKEN at " + attempt->server_text + ": " + reply.to_string(),
                               mta_metrics::FastLaneFallback::auth_failed);
        finish(attempt);
      });
}

void RemoteClient::send_message(std::shared_ptr<Attempt> attempt,
                                std::shared_ptr<SmtpClient> connection) {
  Envelope envelope;
  envelope.sender = attempt->sender;
  std::vector<std::size_t> sent;  // recipient indices, in envelope order
  for (std::size_t i = 0; i < attempt->recipients.size(); ++i) {
    if (attempt->settled[i]) continue;
    const FastLaneRecipient& recipient = attempt->recipients[i];
    envelope.recipients.push_back(recipient.address);
    std::string parameters = "STOKEN=" + recipient.token;
    if (!recipient.my_token.empty()) parameters += " MYSTOKEN=" + recipient.my_token;
    envelope.recipient_parameters.push_back(std::move(parameters));
    sent.push_back(i);
  }
  if (sent.empty()) {
    pool_.release(connection, true);
    return finish(attempt);
  }
  envelope.eight_bit_body = true;  // asked for only when the server offers 8BITMIME
  if (attempt->ehlo_sync) {
    // rfcdraft/ §10: SYNC, without a value, asks for the per-recipient
    // replies after the data that LMTP gives by itself.
    envelope.mail_parameters = "SYNC";
    envelope.reply_per_recipient = true;
  }
  connection->send_transaction(
      std::move(envelope), attempt->message,
      [this, attempt, connection, sent = std::move(sent)](TransactionResult result) {
        for (std::size_t position = 0; position < sent.size(); ++position) {
          const RecipientResult& answer = result.recipients[position];
          FastLaneResult& outcome = attempt->results[sent[position]];
          outcome.server = attempt->server_text;
          outcome.reply = answer.reply_line();
          if (answer.status == DeliveryStatus::delivered) {
            outcome.outcome = FastLaneResult::Outcome::delivered;
            TokenReplyFields fields = parse_token_reply(answer.enhanced_code, answer.text);
            outcome.delivery_id = std::move(fields.delivery_id);
            outcome.permanent_token = std::move(fields.permanent_token);
            mta_metrics::count_fast_lane_delivered(!outcome.permanent_token.empty());
          } else {
            outcome.outcome = FastLaneResult::Outcome::fall_back;
            outcome.token_refused = is_token_refusal(answer.reply_code, answer.enhanced_code);
            if (result.connection_failure && result.message_sent) {
              outcome.reply += " (the connection was lost after the message was sent)";
            }
            mta_metrics::count_fast_lane_fallback(
                outcome.token_refused       ? mta_metrics::FastLaneFallback::token_refused
                : result.connection_failure ? mta_metrics::FastLaneFallback::connection_lost
                                            : mta_metrics::FastLaneFallback::rejected);
          }
          attempt->settled[sent[position]] = true;
        }
        pool_.release(connection, !result.connection_failure);
        finish(attempt);
      });
}

void RemoteClient::finish(std::shared_ptr<Attempt> attempt) {
  // None expected left.
  attempt->fall_back_all("fast lane attempt ended without a result",
                         mta_metrics::FastLaneFallback::connection_lost);
  auto done = std::move(attempt->done);
  done(std::move(attempt->results));
}

}  // namespace stokend::client
