// The DSN extension's ESMTP parameters (RFC 3461 §4): RET and ENVID on MAIL,
// NOTIFY and ORCPT on RCPT, checked strictly and turned into what the queue
// keeps (queue/queued_message.h).
//
//   RET=FULL | RET=HDRS                        (§4.3, case-insensitive)
//   ENVID=xtext, at most 100 characters          (§4.4), printable ASCII decoded
//   NOTIFY=NEVER | NOTIFY=SUCCESS,FAILURE,DELAY  (§4.1: one or more, NEVER alone)
//   ORCPT=addr-type;xtext, at most 500 characters (§4.2); addr-type an atom;
//                                                 "utf-8" takes RFC 6533
//                                                 utf-8-addr-xtext, and its
//                                                 unitext form with SMTPUTF8
//
// Contract: pure functions, never throw. The parse functions look only at
// the DSN keywords among the parameters (the session handles the others)
// and fail on the first bad one, with a 501 5.5.4 reply that names the
// parameter and what is wrong (a repeated keyword too, RFC 5321 §4.1.2
// allows each once).
#pragma once

#include <optional>
#include <string_view>
#include <vector>

#include "mta/server/smtp_command.h"
#include "queue/queued_message.h"

namespace stokend::server {

using queue::max_envid_length;
using queue::max_orcpt_length;

bool is_dsn_mail_keyword(std::string_view keyword);  // RET, ENVID
bool is_dsn_rcpt_keyword(std::string_view keyword);  // NOTIFY, ORCPT

struct MailDsn {
  queue::DsnReturn ret = queue::DsnReturn::unspecified;
  std::string envelope_id;  // decoded
};

struct MailDsnResult {
  std::optional<MailDsn> dsn;
  Reply error;  // set when dsn is empty
};

struct RcptDsnResult {
  std::optional<queue::RecipientDsn> dsn;
  Reply error;  // set when dsn is empty
};

MailDsnResult parse_mail_dsn(const std::vector<EsmtpParameter>& parameters);
// utf8: the transaction is SMTPUTF8 (the utf-8 ORCPT may carry raw UTF-8).
RcptDsnResult parse_rcpt_dsn(const std::vector<EsmtpParameter>& parameters, bool utf8);

}  // namespace stokend::server
