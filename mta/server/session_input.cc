// The part of the session core (see session.h) that answers input it refuses: command
// lines the line reader rejects (line_reader.h), message content the data
// reader rejects (data_reader.h), and RCPT past max_recipients. Each refusal
// gets a specific reply (listed in REPLIES.md) and a log line, and changes
// nothing on disk: a refused message is never queued or delivered.
//
// Also the reader settings taken from the configuration, the SASL
// challenge step and the Received field's protocol word.
#include <spdlog/spdlog.h>

#include <string>
#include <vector>

#include "message/received.h"
#include "mta/defaults.h"
#include "mta/mta_metrics.h"
#include "mta/server/session.h"
#include "mta/server/token_server.h"

namespace stokend::server {

void Session::refuse_line(LineReader::Status status) {
  // A refused line ends a SASL exchange in progress: it is never taken as
  // the response, and the next line is read as a command again.
  const bool in_auth = phase_ == Phase::auth_response;
  if (in_auth) {
    phase_ = Phase::command;
    role_->cancel_auth();
  }
  const char* where = in_auth ? "an AUTH response" : "a command line";
  switch (status) {
    case LineReader::Status::too_long:
      spdlog::info("session {}: {} over {} octets", session_id_, where,
                   context_.config().limits.max_line_length);
      return reply_error(500, "5.5.2", "Line too long");
    case LineReader::Status::auth_too_long:
      // RFC 4954 §4: a line longer than the server's authentication buffer
      // fails the AUTH command with 500 5.5.6 (the text is RFC 4954 §6's).
      spdlog::info("session {}: {} over the AUTH limit of {} octets", session_id_, where,
                   defaults::auth_line_length);
      return reply_error(500, "5.5.6", "Authentication Exchange line is too long");
    case LineReader::Status::bad_line_ending:
      spdlog::info("session {}: bare CR or LF in {}", session_id_, where);
      return reply_error(500, "5.5.2", "Bare CR or LF in command; lines must end with CRLF");
    case LineReader::Status::nul_octet:
      // RFC 5321 §4.1.1: commands are text; a NUL is no part of any.
      spdlog::info("session {}: NUL octet in {}", session_id_, where);
      return reply_error(500, "5.5.2", "Command line contains a NUL octet");
    case LineReader::Status::need_more:
    case LineReader::Status::line:
      break;
  }
}

void Session::refuse_message(DataReader::Error error) {
  Reply refusal;
  switch (error) {
    case DataReader::Error::bare_line_ending:
      spdlog::warn("session {}: message refused: bare CR or LF (possible SMTP smuggling)",
                   session_id_);
      refusal = {550, "5.5.2", "Message contains a bare CR or LF; lines must end with CRLF"};
      mta_metrics::count_rejected(mta_metrics::Rejection::bad_content);
      break;
    case DataReader::Error::line_too_long:
      spdlog::info("session {}: message refused: line over {} octets", session_id_,
                   context_.config().limits.max_line_length);
      refusal = {500, "5.5.2",
                 "Message contains a line over " +
                     std::to_string(context_.config().limits.max_line_length) + " octets"};
      mta_metrics::count_rejected(mta_metrics::Rejection::bad_content);
      break;
    case DataReader::Error::message_too_large:
      spdlog::info("session {}: message refused: over {} octets", session_id_,
                   context_.config().limits.max_message_size);
      refusal = {552, "5.3.4", "Message size exceeds fixed limit"};
      mta_metrics::count_rejected(mta_metrics::Rejection::size);
      break;
    case DataReader::Error::nul_octet:
      // RFC 5322 §3.5 and RFC 2045 §2.7-2.8: mail text holds no NUL; only
      // BINARYMIME (RFC 3030 §3), not offered here, could carry one.
      spdlog::info("session {}: message refused: NUL octet in the content", session_id_);
      refusal = {554, "5.6.0", "Message contains a NUL octet"};
      mta_metrics::count_rejected(mta_metrics::Rejection::bad_content);
      break;
    case DataReader::Error::none:
      return;
  }
  refuse_data(refusal);
}

void Session::refuse_data(const Reply& refusal) {
  std::vector<std::string> recipients;
  if (state_.transaction.token) {
    for (const auto& recipient : state_.transaction.recipients)
      recipients.push_back(recipient.address);
  }
  reset_transaction();
  if (recipients.empty()) return reply_error(refusal.code, refusal.enhanced, refusal.text);
  // A token transaction answers once per accepted recipient after the data
  // (RFC 2033 §4.2), refusals included; together they count as one error.
  for (const auto& address : recipients) {
    reply(refusal.code, refusal.enhanced, "<" + address + "> " + refusal.text);
  }
  count_error();
}

bool Session::recipient_limit_reached() {
  const std::size_t limit = context_.config().limits.max_recipients;
  if (state_.transaction.accepted_rcpt_commands < limit) return false;
  if (!state_.transaction.recipient_limit_logged) {
    state_.transaction.recipient_limit_logged = true;
    spdlog::info("session {}: recipient limit of {} reached", session_id_, limit);
  }
  // RFC 5321 §4.5.3.1.10: 452 for too many recipients, the client retries the rest.
  mta_metrics::count_rejected(mta_metrics::Rejection::too_many_recipients);
  reply(452, "4.5.3", "Too many recipients");
  return true;
}

DataReader::Limits Session::data_limits() const {
  DataReader::Limits limits;
  limits.max_message_size = context_.config().limits.max_message_size;
  limits.max_line_length = context_.config().limits.max_line_length;
  limits.normalise_bare_line_endings = context_.config().normalise_bare_line_endings;
  limits.strip_nul_octets = context_.config().nul_octets == NulOctets::strip;
  return limits;
}

void Session::ask_sasl_response(std::string_view challenge) {
  phase_ = Phase::auth_response;
  // RFC 4954 §4: the response may be longer than a command line.
  line_reader_.expect_sasl_response();
  reply(334, "", challenge);
}

bool Session::token_server_logged_in() const {
  const TokenServer* server = role_ ? role_->token_server() : nullptr;
  return server && server->logged_in();
}

std::string Session::received_protocol() const {
  // RFC 3848 §4 and rfcdraft §8.5: LMTPSA for token deliveries after LHLO
  // (which always follow AUTH STOKEN); in the SYNC variant after EHLO
  // (rfcdraft §10) ESMTPSA after AUTH STOKEN, ESMTPS without it.
  // RFC 6531 §3.7.3: UTF8 variants when the transaction used SMTPUTF8.
  const bool token = state_.transaction.token;
  const bool token_login = token && token_server_logged_in();
  message::ProtocolUsed used;
  used.lmtp = token && state_.lmtp();
  used.extended = state_.extended() || token;
  used.tls = state_.tls_active || token;
  used.authenticated =
      state_.authenticated_user.has_value() || (token && state_.lmtp()) || token_login;
  used.smtputf8 = state_.transaction.utf8;
  return message::with_protocol(used);
}

}  // namespace stokend::server
