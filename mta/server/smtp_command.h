// Parsing of SMTP command lines (RFC 5321 §4.1) and of the MAIL/RCPT
// arguments with their ESMTP parameters (RFC 5321 §4.1.2 Mail-parameters).
//
// Contract: pure functions, no I/O, never throw. Every failure carries the
// reply the server should send (code, enhanced status, text) so the session
// can answer with a specific error.
#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "message/address.h"

namespace stokend::server {

enum class Verb {
  ehlo,
  helo,
  lhlo,
  mail,
  rcpt,
  data,
  bdat,
  rset,
  noop,
  quit,
  vrfy,
  expn,
  help,
  starttls,
  auth,
  genstoken,
  revstoken,
  unknown
};

struct Command {
  Verb verb = Verb::unknown;
  std::string verb_text;  // as written, for "unrecognized command" replies
  std::string argument;   // the rest of the line after one SP, as written
};

// Splits "VERB[ SP argument]"; the verb is case-insensitive.
Command parse_command(std::string_view line);

struct Reply {
  int code = 0;          // 3-digit SMTP reply code
  std::string enhanced;  // RFC 3463 enhanced status, e.g. "5.5.4"
  std::string text;
};

struct EsmtpParameter {
  std::string keyword;  // uppercased
  std::string value;    // as written; empty when absent
  bool has_value = false;
};

struct MailOrRcptArgument {
  message::Path path;
  std::vector<EsmtpParameter> parameters;
};

struct ArgumentParseResult {
  std::optional<MailOrRcptArgument> argument;
  Reply error;  // set when argument is empty
};

// "FROM:<path> [params]" for MAIL; the "FROM:" prefix is case-insensitive and
// RFC 5321 allows no space before '<' (we tolerate one, as Postfix does).
// utf8: the client may use UTF-8 addresses (it sent SMTPUTF8 in this MAIL, or
// for RCPT, in the transaction's MAIL).
// Errors: 501 5.5.4 for a missing "FROM:"/"TO:" or bad parameters, 501 5.1.7
// (MAIL) / 501 5.1.3 (RCPT) for a bad address. Parameters are checked for
// syntax only (and SIZE, BODY, SMTPUTF8 for their value syntax); whether one
// is supported is the caller's decision (555). RCPT accepts "<Postmaster>"
// without a domain (RFC 5321 §4.1.1.3): the mailbox then has local part
// "Postmaster" as written and an empty domain.
ArgumentParseResult parse_mail_argument(std::string_view argument);
ArgumentParseResult parse_rcpt_argument(std::string_view argument, bool utf8);

// Finds a parameter by (uppercase) keyword.
const EsmtpParameter* find_parameter(const std::vector<EsmtpParameter>& parameters,
                                     std::string_view keyword);

}  // namespace stokend::server
