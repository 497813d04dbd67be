// What a session's Postfix-shaped log lines need from the session (the
// lines themselves: common/log_lines.h; README "Logs"): the address a
// MAIL or RCPT command names, the protocol word, a message's Message-ID.
//
// Contract: pure functions, no I/O. Only the path of a MAIL or RCPT command
// is ever taken for the log, never its parameters (an RCPT to the Token
// Server carries tokens in STOKEN= and MYSTOKEN=).
#pragma once

#include <string>
#include <string_view>

#include "mta/server/session_core.h"

namespace stokend::server {

// The path of a MAIL or RCPT argument, between the '<' right after the
// colon and the next '>' ("FROM:<a@b> SIZE=10" -> "a@b"), at most 256
// octets (RFC 5321 §4.5.3.1.3); empty when the argument does not start so.
std::string logged_path(std::string_view argument);

// proto= of a reject line: "ESMTP" after EHLO, "LMTP" after LHLO, else "SMTP".
std::string logged_protocol(const SessionState& state);

// The Message-ID of a message without its angle brackets, or "" when it has
// none (the cleanup line says message-id=<>).
std::string logged_message_id(std::string_view message);

// The mechanism word of an AUTH argument, uppercased, for the SASL failure
// line ("plain AGFsaWNl..." -> "PLAIN"); only SASL name characters (RFC 4422
// §3.1), at most 20.
std::string logged_mechanism(std::string_view argument);

}  // namespace stokend::server
