// libFuzzer target for what a session takes from a peer's input for the
// Postfix-shaped log lines (mta/server/session_log.h) and for the lines
// themselves (common/log_lines.h).
//
// The input is used as a MAIL/RCPT argument, an AUTH argument, a message and
// a peer's reply. Beyond memory safety (the sanitizers), checks (abort on
// violation): no line ever holds a control octet (a peer cannot start a log
// line of its own); a logged path is at most 256 octets and never comes from
// a parameter (nothing after the path's '>' is taken); a mechanism is at
// most 20 SASL name characters; dsn= is always X.Y.Z with X in 2, 4, 5.
#include <cctype>
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>

#include "common/log_lines.h"
#include "mta/server/session_log.h"

namespace {

using namespace stokend;

void require(bool condition) {
  if (!condition) std::abort();
}

bool printable(std::string_view text) {
  for (char c : text) {
    const auto octet = static_cast<unsigned char>(c);
    if (octet < 0x20 || octet == 0x7f) return false;
  }
  return true;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view input(reinterpret_cast<const char*>(data), size);

  const std::string path = server::logged_path(input);
  require(path.size() <= 256);
  if (!path.empty()) {
    // Taken from right after the colon: the input holds "<" + path there.
    const auto colon = input.find(':');
    require(colon != std::string_view::npos);
    require(input.find("<" + path, colon) != std::string_view::npos);
  }
  const std::string mechanism = server::logged_mechanism(input);
  require(mechanism.size() <= 20);
  for (char c : mechanism) {
    require(std::isupper(static_cast<unsigned char>(c)) ||
            std::isdigit(static_cast<unsigned char>(c)) || c == '-' || c == '_');
  }
  const std::string id = server::logged_message_id(input);
  require(id.size() <= 256);

  log_lines::Reject reject;
  reject.stage = "RCPT";
  reject.client = log_lines::client(input);
  reject.reply = std::string(input);
  reject.sender_known = true;
  reject.sender = path;
  reject.recipient = std::string(input);
  reject.protocol = "ESMTP";
  reject.helo = std::string(input);
  require(printable(log_lines::reject(reject)));

  log_lines::Delivery delivery;
  delivery.recipient = std::string(input);
  delivery.relay = log_lines::endpoint(input, input, 25);
  delivery.reply = std::string(input);
  require(printable(log_lines::delivery(delivery)));
  require(printable(log_lines::printable(id)));

  const std::string dsn = log_lines::dsn_of(input);
  require(dsn.size() >= 5 && (dsn[0] == '2' || dsn[0] == '4' || dsn[0] == '5') && dsn[1] == '.');
  return 0;
}
