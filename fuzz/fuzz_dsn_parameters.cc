// libFuzzer target for the DSN parameters (mta/server/dsn_parameters.h) and
// xtext (message/xtext.h).
//
// Runs the MAIL and RCPT DSN parsers on the parameters of the input parsed
// as an RCPT argument, and the xtext decoders on the raw input. Beyond
// memory safety (the sanitizers), checks (abort on violation): a failure
// always carries a 501 5.5.4 reply, a success none; NOTIFY=NEVER is never
// combined; a decoded ENVID or ORCPT is within the limits and encodes to
// text that decodes back to it; what is passed on to a next hop
// (mta/delivery/dsn_forwarding.h) parses back to the same request.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>

#include "message/xtext.h"
#include "mta/delivery/dsn_forwarding.h"
#include "mta/server/dsn_parameters.h"
#include "mta/server/smtp_command.h"

namespace {

using namespace stokend;

void require(bool condition) {
  if (!condition) std::abort();
}

void check_failure(const server::Reply& error) {
  require(error.code == 501 && error.enhanced == "5.5.4" && !error.text.empty());
}

void check_recipient(const queue::RecipientDsn& dsn, bool utf8) {
  require((dsn.notify & ~queue::notify::all) == 0);
  require((dsn.notify & queue::notify::never) == 0 || dsn.notify == queue::notify::never);
  require(dsn.original_type.empty() == dsn.original_address.empty());
  if (dsn.original_type.empty()) return;
  queue::Envelope envelope;
  envelope.recipients = {"bob@example.net"};
  envelope.recipient_dsn = {dsn};
  const std::string passed_on = dsn_recipient_parameters(envelope, 0);
  if (passed_on.find("ORCPT=") == std::string::npos) return;  // too long once escaped
  const auto reparsed = server::parse_rcpt_argument("TO:<bob@example.net> " + passed_on, utf8);
  require(reparsed.argument.has_value());
  const auto again = server::parse_rcpt_dsn(reparsed.argument->parameters, utf8);
  require(again.dsn.has_value());
  require(again.dsn->notify == dsn.notify);
  require(again.dsn->original_address == dsn.original_address);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view input(reinterpret_cast<const char*>(data), size);

  for (const bool utf8 : {false, true}) {
    const auto argument = server::parse_rcpt_argument(input, utf8);
    if (!argument.argument) continue;
    const auto& parameters = argument.argument->parameters;
    const auto rcpt = server::parse_rcpt_dsn(parameters, utf8);
    if (rcpt.dsn) {
      require(rcpt.error.code == 0);
      check_recipient(*rcpt.dsn, utf8);
    } else {
      check_failure(rcpt.error);
    }
    const auto mail = server::parse_mail_dsn(parameters);
    if (mail.dsn) {
      require(mail.error.code == 0);
      require(mail.dsn->envelope_id.size() <= server::max_envid_length);
      queue::Envelope envelope;
      envelope.envelope_id = mail.dsn->envelope_id;
      envelope.dsn_return = mail.dsn->ret;
      (void)dsn_mail_parameters(envelope);
    } else {
      check_failure(mail.error);
    }
  }

  if (const auto decoded = message::decode_xtext(input)) {
    require(message::decode_xtext(message::encode_xtext(*decoded)) == *decoded);
  }
  for (const bool utf8 : {false, true}) {
    if (const auto decoded = message::decode_utf8_address_xtext(input, utf8)) {
      require(message::decode_utf8_address_xtext(message::encode_utf8_address_xtext(*decoded),
                                                 false) == *decoded);
    }
  }
  return 0;
}
