// The PROXY protocol header parser (mta/server/proxy_protocol.h), versions 1
// and 2, against the examples and rules of HAProxy's proxy-protocol.txt.
#include "mta/server/proxy_protocol.h"

#include <catch2/catch.hpp>
#include <string>

using stokend::server::parse_proxy_header;
using stokend::server::ProxyParse;
using Status = ProxyParse::Status;

namespace {

std::string v2(unsigned char version_command, unsigned char family, const std::string& payload) {
  std::string header("\r\n\r\n\0\r\nQUIT\n", 12);
  header += static_cast<char>(version_command);
  header += static_cast<char>(family);
  header += static_cast<char>(payload.size() >> 8);
  header += static_cast<char>(payload.size() & 0xff);
  return header + payload;
}

// 192.0.2.1:56324 -> 198.51.100.2:25
const std::string tcp4_block("\xc0\x00\x02\x01\xc6\x33\x64\x02\xdc\x04\x00\x19", 12);

}  // namespace

TEST_CASE("PROXY v1 headers give the client's address and their length", "[proxy]") {
  const std::string header = "PROXY TCP4 192.0.2.1 198.51.100.2 56324 25\r\n";
  const ProxyParse parse = parse_proxy_header(header + "EHLO client\r\n");
  REQUIRE(parse.status == Status::complete);
  CHECK(parse.length == header.size());  // nothing of the SMTP bytes after it
  CHECK(parse.header.version == 1);
  CHECK(parse.header.addresses_known);
  CHECK(parse.header.source_address == "192.0.2.1");
  CHECK(parse.header.source_port == 56324);
  CHECK(parse.header.destination_address == "198.51.100.2");
  CHECK(parse.header.destination_port == 25);

  const ProxyParse v6 = parse_proxy_header("PROXY TCP6 2001:DB8:0:0::1 2001:db8::2 65535 587\r\n");
  REQUIRE(v6.status == Status::complete);
  CHECK(v6.header.source_address == "2001:db8::1");  // canonical, for the per-address limits

  const ProxyParse unknown = parse_proxy_header("PROXY UNKNOWN whatever follows\r\n");
  REQUIRE(unknown.status == Status::complete);
  CHECK_FALSE(unknown.header.addresses_known);
}

TEST_CASE("a PROXY v1 header still arriving asks for more", "[proxy]") {
  const std::string header = "PROXY TCP4 192.0.2.1 198.51.100.2 56324 25\r\n";
  for (std::size_t size = 0; size < header.size(); ++size) {
    CAPTURE(size);
    CHECK(parse_proxy_header(header.substr(0, size)).status == Status::incomplete);
  }
}

TEST_CASE("malformed PROXY v1 headers are refused with a reason", "[proxy]") {
  for (const char* bad : {
           "EHLO client\r\n",
           "PROXY TCP5 192.0.2.1 198.51.100.2 1 2\r\n",
           "PROXY TCP4 192.0.2.1 198.51.100.2 1\r\n",
           "PROXY TCP4 192.0.2.1 198.51.100.2 1 2 3\r\n",
           "PROXY TCP4 192.0.2.1  198.51.100.2 1 2\r\n",
           "PROXY TCP4 2001:db8::1 198.51.100.2 1 2\r\n",
           "PROXY TCP6 192.0.2.1 198.51.100.2 1 2\r\n",
           "PROXY TCP4 192.0.2.1 198.51.100.2 65536 25\r\n",
           "PROXY TCP4 192.0.2.1 198.51.100.2 025 25\r\n",
           "PROXY TCP4 192.0.2.1 198.51.100.2 -1 25\r\n",
           "PROXY TCP4 192.0.2.1 198.51.100.2 1 2\n",
           "proxy TCP4 192.0.2.1 198.51.100.2 1 2\r\n",
       }) {
    CAPTURE(bad);
    const ProxyParse parse = parse_proxy_header(bad);
    CHECK(parse.status == Status::invalid);
    CHECK_FALSE(parse.error.empty());
  }
  // §2.1: 107 octets at most; a line that has not ended by then never will.
  const std::string long_line = "PROXY UNKNOWN " + std::string(100, 'x');
  CHECK(parse_proxy_header(long_line).status == Status::invalid);
  CHECK(parse_proxy_header("PROXY UNKNOWN " + std::string(91, 'x') + "\r\n").status ==
        Status::complete);
  CHECK(parse_proxy_header("PROXY UNKNOWN " + std::string(92, 'x') + "\r\n").status ==
        Status::invalid);
}

TEST_CASE("PROXY v2 headers: PROXY and LOCAL, IPv4 and IPv6, TLVs skipped", "[proxy]") {
  const std::string tlv("\x20\x00\x03xyz", 6);
  const std::string header = v2(0x21, 0x11, tcp4_block + tlv);
  const ProxyParse parse = parse_proxy_header(header + "EHLO");
  REQUIRE(parse.status == Status::complete);
  CHECK(parse.length == header.size());
  CHECK(parse.header.version == 2);
  CHECK(parse.header.addresses_known);
  CHECK(parse.header.source_address == "192.0.2.1");
  CHECK(parse.header.source_port == 56324);
  CHECK(parse.header.destination_address == "198.51.100.2");
  CHECK(parse.header.destination_port == 25);

  std::string block6(36, '\0');
  block6[0] = '\x20';
  block6[1] = '\x01';
  block6[15] = '\x01';
  block6[31] = '\x02';
  block6[32] = '\x01';  // port 256
  block6[35] = '\x19';
  const ProxyParse v6 = parse_proxy_header(v2(0x21, 0x21, block6));
  REQUIRE(v6.status == Status::complete);
  CHECK(v6.header.source_address == "2001::1");
  CHECK(v6.header.destination_address == "::2");
  CHECK(v6.header.source_port == 256);

  // LOCAL: the balancer's own connection (a health check), addresses ignored.
  const ProxyParse local = parse_proxy_header(v2(0x20, 0x11, tcp4_block));
  REQUIRE(local.status == Status::complete);
  CHECK_FALSE(local.header.addresses_known);
  // UNSPEC and unix stream: nothing usable about the client.
  CHECK_FALSE(parse_proxy_header(v2(0x21, 0x00, "")).header.addresses_known);
  CHECK(parse_proxy_header(v2(0x21, 0x31, std::string(216, '\0'))).status == Status::complete);

  for (std::size_t size = 0; size < header.size(); ++size) {
    CAPTURE(size);
    CHECK(parse_proxy_header(header.substr(0, size)).status == Status::incomplete);
  }
}

TEST_CASE("malformed PROXY v2 headers are refused with a reason", "[proxy]") {
  CHECK(parse_proxy_header(v2(0x11, 0x11, tcp4_block)).status == Status::invalid);  // version 1
  CHECK(parse_proxy_header(v2(0x22, 0x11, tcp4_block)).status == Status::invalid);  // command 2
  CHECK(parse_proxy_header(v2(0x21, 0x12, tcp4_block)).status == Status::invalid);  // UDP
  CHECK(parse_proxy_header(v2(0x21, 0x41, tcp4_block)).status == Status::invalid);  // family 4
  CHECK(parse_proxy_header(v2(0x21, 0x11, tcp4_block.substr(0, 11))).status == Status::invalid);
  CHECK(parse_proxy_header(v2(0x21, 0x21, tcp4_block)).status == Status::invalid);  // short for v6
  // Over the length limit: refused as soon as the length is seen.
  const std::string huge = v2(0x21, 0x11, std::string(3000, '\0')).substr(0, 16);
  CHECK(parse_proxy_header(huge).status == Status::invalid);
  std::string broken_signature = v2(0x21, 0x11, tcp4_block);
  broken_signature[4] = 'x';
  CHECK(parse_proxy_header(broken_signature).status == Status::invalid);
}
