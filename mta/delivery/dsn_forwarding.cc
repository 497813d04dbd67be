// See dsn_forwarding.h.
#include "mta/delivery/dsn_forwarding.h"

#include "common/ascii.h"
#include "message/xtext.h"

namespace stokend {
namespace {

// ORCPT's value: addr-type ";" xtext (RFC 3461 §4.2), or utf-8-addr-xtext
// for the "utf-8" type (RFC 6533 §3), which stays ASCII so that any next
// hop offering DSN can take it.
std::string original_recipient(std::string_view type, std::string_view address) {
  if (type == "utf-8" || !is_ascii(address)) {
    return "utf-8;" + message::encode_utf8_address_xtext(address);
  }
  return std::string(type) + ";" + message::encode_xtext(address);
}

}  // namespace

std::string dsn_mail_parameters(const queue::Envelope& envelope) {
  std::string parameters;
  switch (envelope.dsn_return) {
    case queue::DsnReturn::full:
      parameters = "RET=FULL";
      break;
    case queue::DsnReturn::headers:
      parameters = "RET=HDRS";
      break;
    case queue::DsnReturn::unspecified:
      break;
  }
  if (!envelope.envelope_id.empty()) {
    if (!parameters.empty()) parameters += " ";
    parameters += "ENVID=" + message::encode_xtext(envelope.envelope_id);
  }
  return parameters;
}

std::string dsn_recipient_parameters(const queue::Envelope& envelope, std::size_t index) {
  const queue::RecipientDsn request = envelope.dsn_of(index);
  std::string parameters;
  if (request.notify != 0) {
    if ((request.notify & queue::notify::never) != 0) {
      parameters = "NOTIFY=NEVER";
    } else {
      std::string list;
      for (const auto& [bit, name] : {std::pair{queue::notify::success, "SUCCESS"},
                                      std::pair{queue::notify::failure, "FAILURE"},
                                      std::pair{queue::notify::delay, "DELAY"}}) {
        if ((request.notify & bit) == 0) continue;
        if (!list.empty()) list += ",";
        list += name;
      }
      parameters = "NOTIFY=" + list;
    }
  }
  if (!parameters.empty()) parameters += " ";
  std::string original;
  if (!request.original_type.empty()) {
    original = original_recipient(request.original_type, request.original_address);
  } else if (index < envelope.recipients.size()) {
    original = original_recipient("rfc822", envelope.recipients[index]);
  }
  // Escaping raw UTF-8 can make a value longer than the 500 characters a
  // next hop accepts (RFC 3461 §4.2); ORCPT is optional, so it stays out
  // rather than have the recipient refused.
  if (!original.empty() && original.size() <= queue::max_orcpt_length) {
    parameters += "ORCPT=" + original;
  }
  while (parameters.ends_with(' ')) parameters.pop_back();
  return parameters;
}

}  // namespace stokend
