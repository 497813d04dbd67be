// libFuzzer target for the command and address parsers.
//
// Runs parse_command, parse_mail_argument, parse_rcpt_argument, parse_path
// and parse_mailbox on the input. Beyond memory safety (the sanitizers),
// checks (abort on violation): a failure always carries a 501 reply, a
// success none; a parsed path reports a consumed length within the input
// and the RFC 5321 limits; a parsed mailbox re-encodes to text that parses
// back to the same mailbox; UTF-8 is only accepted when allowed.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>

#include "common/ascii.h"
#include "message/address.h"
#include "mta/server/smtp_command.h"

namespace {

using namespace stokend;

void require(bool condition) {
  if (!condition) std::abort();
}

bool has_non_ascii(std::string_view text) {
  for (const char character : text) {
    if (static_cast<unsigned char>(character) >= 0x80) return true;
  }
  return false;
}

void check_round_trip(const message::Mailbox& mailbox, bool utf8) {
  if (mailbox.domain.empty()) return;  // <Postmaster>
  if (!utf8) require(!has_non_ascii(mailbox.local_part) && !has_non_ascii(mailbox.domain));
  const std::string encoded = mailbox.to_string();
  const auto again = message::parse_mailbox(encoded, true);
  // Re-encoding uses the least quoting needed, so it is never longer than
  // what was parsed and stays within the limits.
  require(again.has_value());
  require(again->local_part == mailbox.local_part);
  require(again->domain == mailbox.domain);
  require(again->to_string() == encoded);
}

void check_argument(const server::ArgumentParseResult& result, bool utf8) {
  if (result.argument) {
    require(result.error.code == 0);
    if (!result.argument->path.is_null) check_round_trip(result.argument->path.mailbox, utf8);
    for (const auto& parameter : result.argument->parameters) {
      require(!parameter.keyword.empty());
      require(parameter.has_value != parameter.value.empty());
      require(server::find_parameter(result.argument->parameters, parameter.keyword) != nullptr);
    }
  } else {
    require(result.error.code == 501);
    require(!result.error.enhanced.empty() && !result.error.text.empty());
  }
}

void check_path(std::string_view input, bool allow_null, bool utf8) {
  const auto result = message::parse_path(input, allow_null, utf8);
  if (!result.path) {
    require(!result.error.empty());
    return;
  }
  require(result.error.empty());
  require(result.consumed >= 2 && result.consumed <= input.size() && result.consumed <= 256);
  require(input[result.consumed - 1] == '>');
  if (result.path->is_null) {
    require(allow_null && result.consumed == 2);
    return;
  }
  check_round_trip(result.path->mailbox, utf8);
  (void)message::relay_trick(*result.path);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view input(reinterpret_cast<const char*>(data), size);

  const server::Command command = server::parse_command(input);
  require(command.verb_text.size() <= input.size());
  require(command.verb_text.find(' ') == std::string::npos);

  const auto mail = server::parse_mail_argument(input);
  check_argument(mail, true);
  if (mail.argument && !mail.argument->path.is_null &&
      server::find_parameter(mail.argument->parameters, "SMTPUTF8") == nullptr) {
    const auto& mailbox = mail.argument->path.mailbox;
    require(!has_non_ascii(mailbox.local_part) && !has_non_ascii(mailbox.domain));
  }
  check_argument(server::parse_rcpt_argument(input, false), false);
  check_argument(server::parse_rcpt_argument(input, true), true);

  check_path(input, true, true);
  check_path(input, false, false);

  for (const bool utf8 : {false, true}) {
    const auto mailbox = message::parse_mailbox(input, utf8);
    if (mailbox) {
      check_round_trip(*mailbox, utf8);
      require(ascii_lowercase(mailbox->normalized()) == mailbox->normalized());
    }
  }
  return 0;
}
