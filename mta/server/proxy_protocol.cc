// See proxy_protocol.h. Section numbers refer to HAProxy's
// proxy-protocol.txt.
#include "mta/server/proxy_protocol.h"

#include <arpa/inet.h>

#include <array>
#include <cstring>
#include <optional>

#include "common/ascii.h"

namespace stokend::server {
namespace {

using Status = ProxyParse::Status;

constexpr std::string_view v1_prefix = "PROXY ";
// §2.2: the twelve octets that open a version 2 header.
constexpr std::string_view v2_signature{"\r\n\r\n\0\r\nQUIT\n", 12};

ProxyParse invalid(std::string error) {
  ProxyParse parse;
  parse.status = Status::invalid;
  parse.error = std::move(error);
  return parse;
}

ProxyParse incomplete() { return ProxyParse{}; }

// An address of the family in its canonical text, or nothing.
std::optional<std::string> canonical(int family, std::string_view text) {
  if (text.empty() || text.size() >= INET6_ADDRSTRLEN) return std::nullopt;
  const std::string terminated(text);
  std::array<unsigned char, 16> bytes{};
  if (inet_pton(family, terminated.c_str(), bytes.data()) != 1) return std::nullopt;
  char out[INET6_ADDRSTRLEN] = "";
  inet_ntop(family, bytes.data(), out, sizeof out);
  return std::string(out);
}

// §2.1: a port is a decimal number 0-65535, without leading zeros.
std::optional<std::uint16_t> parse_port(std::string_view text) {
  if (text.empty() || text.size() > 5 || (text.size() > 1 && text.front() == '0')) {
    return std::nullopt;
  }
  const auto value = parse_decimal(text);
  if (!value || *value > 65535) return std::nullopt;
  return static_cast<std::uint16_t>(*value);
}

ProxyParse parse_v1(std::string_view bytes) {
  const std::size_t end = bytes.find("\r\n");
  if (end == std::string_view::npos) {
    if (bytes.size() >= max_proxy_v1_header) return invalid("PROXY v1 header without CRLF");
    // A lone CR or LF inside the line can never become a valid header.
    if (bytes.find('\n') != std::string_view::npos) return invalid("PROXY v1 header with bare LF");
    return incomplete();
  }
  if (end + 2 > max_proxy_v1_header) return invalid("PROXY v1 header over 107 octets");
  std::string_view line = bytes.substr(v1_prefix.size(), end - v1_prefix.size());
  std::array<std::string_view, 5> fields;
  std::size_t count = 0;
  while (count < fields.size()) {
    const std::size_t space = line.find(' ');
    fields[count++] = line.substr(0, space);
    if (space == std::string_view::npos) {
      line = {};
      break;
    }
    line.remove_prefix(space + 1);
  }
  ProxyParse parse;
  parse.status = Status::complete;
  parse.length = end + 2;
  parse.header.version = 1;
  if (fields[0] == "UNKNOWN") return parse;  // §2.1: the rest is to be ignored
  const int family = fields[0] == "TCP4" ? AF_INET : fields[0] == "TCP6" ? AF_INET6 : 0;
  if (family == 0) return invalid("PROXY v1 header with unknown protocol");
  if (count != 5 || !line.empty()) return invalid("PROXY v1 header without 4 address fields");
  const auto source = canonical(family, fields[1]);
  const auto destination = canonical(family, fields[2]);
  const auto source_port = parse_port(fields[3]);
  const auto destination_port = parse_port(fields[4]);
  if (!source || !destination) return invalid("PROXY v1 header with a malformed address");
  if (!source_port || !destination_port) return invalid("PROXY v1 header with a malformed port");
  parse.header.addresses_known = true;
  parse.header.source_address = *source;
  parse.header.destination_address = *destination;
  parse.header.source_port = *source_port;
  parse.header.destination_port = *destination_port;
  return parse;
}

std::uint16_t read_u16(std::string_view bytes, std::size_t at) {
  return static_cast<std::uint16_t>((static_cast<unsigned char>(bytes[at]) << 8) |
                                    static_cast<unsigned char>(bytes[at + 1]));
}

std::string address_text(int family, const char* bytes) {
  char out[INET6_ADDRSTRLEN] = "";
  inet_ntop(family, bytes, out, sizeof out);
  return out;
}

ProxyParse parse_v2(std::string_view bytes) {
  if (bytes.size() < 16) return incomplete();
  const auto version_command = static_cast<unsigned char>(bytes[12]);
  const auto family_transport = static_cast<unsigned char>(bytes[13]);
  const std::size_t payload = read_u16(bytes, 14);
  if ((version_command >> 4) != 2) return invalid("PROXY v2 header with unknown version");
  const unsigned command = version_command & 0x0f;
  if (command > 1) return invalid("PROXY v2 header with unknown command");
  if (payload > max_proxy_v2_payload) return invalid("PROXY v2 header over the length limit");
  if (bytes.size() < 16 + payload) return incomplete();

  ProxyParse parse;
  parse.status = Status::complete;
  parse.length = 16 + payload;
  parse.header.version = 2;
  // §2.2: LOCAL is the balancer speaking for itself; its address block is
  // to be skipped whatever it holds.
  if (command == 0) return parse;
  const unsigned family = family_transport >> 4;
  const unsigned transport = family_transport & 0x0f;
  if (family > 3 || transport > 2) return invalid("PROXY v2 header with unknown family");
  if (family == 0) return parse;  // UNSPEC: nothing said about the client
  if (transport != 1) return invalid("PROXY v2 header for a datagram connection");
  if (family == 3) return parse;  // a unix socket client has no address to use
  const std::size_t address_length = family == 1 ? 12 : 36;
  if (payload < address_length) return invalid("PROXY v2 header shorter than its addresses");
  const char* block = bytes.data() + 16;
  const int address_family = family == 1 ? AF_INET : AF_INET6;
  const std::size_t size = family == 1 ? 4 : 16;
  parse.header.addresses_known = true;
  parse.header.source_address = address_text(address_family, block);
  parse.header.destination_address = address_text(address_family, block + size);
  parse.header.source_port = read_u16(bytes, 16 + 2 * size);
  parse.header.destination_port = read_u16(bytes, 16 + 2 * size + 2);
  return parse;
}

}  // namespace

ProxyParse parse_proxy_header(std::string_view bytes) {
  if (bytes.empty()) return incomplete();
  const std::size_t v2_seen = std::min(bytes.size(), v2_signature.size());
  if (bytes.substr(0, v2_seen) == v2_signature.substr(0, v2_seen)) {
    return v2_seen < v2_signature.size() ? incomplete() : parse_v2(bytes);
  }
  const std::size_t v1_seen = std::min(bytes.size(), v1_prefix.size());
  if (bytes.substr(0, v1_seen) == v1_prefix.substr(0, v1_seen)) {
    return v1_seen < v1_prefix.size() ? incomplete() : parse_v1(bytes);
  }
  return invalid("no PROXY protocol header");
}

}  // namespace stokend::server
