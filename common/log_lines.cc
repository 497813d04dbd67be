// See log_lines.h.
#include "common/log_lines.h"

#include <cctype>
#include <cmath>
#include <cstdio>

#include "common/enhanced_status.h"

namespace stokend::log_lines {

std::string printable(std::string_view text) {
  std::string out(text);
  for (char& c : out) {
    const auto octet = static_cast<unsigned char>(c);
    if (octet < 0x20 || octet == 0x7f) c = '?';
  }
  return out;
}

std::string client(std::string_view address, std::string_view name) {
  return (name.empty() ? std::string("unknown") : printable(name)) + "[" + printable(address) + "]";
}

std::string endpoint(std::string_view host, std::string_view address, unsigned port) {
  return printable(host) + "[" + printable(address) + "]:" + std::to_string(port);
}

std::string seconds(double value) {
  if (!(value > 0)) return "0";  // also a negative (clock step) or NaN
  char text[32];
  std::snprintf(text, sizeof text, "%.2f", std::round(value * 100) / 100);
  std::string out(text);
  while (out.back() == '0') out.pop_back();
  if (out.back() == '.') out.pop_back();
  return out;
}

std::string dsn_of(std::string_view reply) {
  const bool has_code = reply.size() >= 3 && std::isdigit(static_cast<unsigned char>(reply[0])) &&
                        std::isdigit(static_cast<unsigned char>(reply[1])) &&
                        std::isdigit(static_cast<unsigned char>(reply[2])) &&
                        (reply.size() == 3 || reply[3] == ' ' || reply[3] == '-');
  if (!has_code) return "4.0.0";
  const int code = (reply[0] - '0') * 100 + (reply[1] - '0') * 10 + (reply[2] - '0');
  std::string text(reply.size() > 4 ? reply.substr(4) : std::string_view{});
  std::string enhanced = take_enhanced_code(code, text);
  if (!enhanced.empty()) return enhanced;
  // RFC 3463 §3.1: only classes 2, 4 and 5 exist; anything else is no
  // answer to report, so temporary.
  if (reply[0] != '2' && reply[0] != '5') return "4.0.0";
  return std::string(1, reply[0]) + ".0.0";
}

namespace {

const char* status_name(Status status) {
  switch (status) {
    case Status::sent:
      return "sent";
    case Status::bounced:
      return "bounced";
    case Status::deferred:
      break;
  }
  return "deferred";
}

}  // namespace

std::string delivery(const Delivery& line) {
  const double total = line.before_queue + line.in_queue + line.connection + line.transmission;
  return "to=<" + printable(line.recipient) + ">, relay=" + printable(line.relay) +
         ", delay=" + seconds(total) + ", delays=" + seconds(line.before_queue) + "/" +
         seconds(line.in_queue) + "/" + seconds(line.connection) + "/" +
         seconds(line.transmission) + ", dsn=" + dsn_of(line.reply) +
         ", status=" + status_name(line.status) + " (" + printable(line.reply) + ")";
}

std::string reject(const Reject& line) {
  std::string out = "NOQUEUE: reject: " + line.stage + " from " + line.client + ": " +
                    printable(line.reply) + ";";
  if (line.sender_known) out += " from=<" + printable(line.sender) + ">";
  if (!line.recipient.empty()) out += " to=<" + printable(line.recipient) + ">";
  out += " proto=" + line.protocol;
  if (!line.helo.empty()) out += " helo=<" + printable(line.helo) + ">";
  return out;
}

}  // namespace stokend::log_lines
