// The DSN parameters (RFC 3461) a queued message carries on to a next hop
// that offers DSN: RET and ENVID for MAIL, NOTIFY and ORCPT for each RCPT.
//
// Contract: pure functions, never throw. The results are ESMTP parameter
// text without CR, LF or NUL (every value is xtext-encoded), empty when
// there is nothing to pass on. Relaying, the ORCPT is always sent: the
// client's own, or, when it gave none, the recipient address as received,
// as RFC 3461 §4.2 lets the relaying MTA add it, so the final report can
// name the address the sender used. An ORCPT that would be longer than
// RFC 3461 §4.2's 500 characters once escaped is left out.
#pragma once

#include <cstddef>
#include <string>

#include "queue/queued_message.h"

namespace stokend {

// "RET=HDRS ENVID=..." for MAIL.
std::string dsn_mail_parameters(const queue::Envelope& envelope);
// "NOTIFY=SUCCESS,FAILURE ORCPT=rfc822;..." for the RCPT of recipient `index`.
std::string dsn_recipient_parameters(const queue::Envelope& envelope, std::size_t index);

}  // namespace stokend
