// The PROXY protocol header (HAProxy's proxy-protocol.txt, versions 1 and
// 2) that a load balancer in front of a listener sends before the client's
// first byte, naming the client's address and port, so that per-address
// limits, Received fields and logs see the client rather than the balancer.
//
// Contract: parse_proxy_header() looks at the bytes received so far and
// says whether they are a whole header (and how many octets it took), the
// start of one (incomplete: read more, never more than max_proxy_header
// octets in all), or not a header at all (invalid, with the reason). It
// never asks for a byte beyond the header: a version 1 header ends at its
// CRLF, a version 2 header at the length it declares, so the SMTP bytes
// that follow are left for the session. Addresses come out in inet_ntop's
// canonical form. Pure function on text; nothing here touches a socket.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

namespace stokend::server {

// Version 1: 107 octets at most, CRLF included (proxy-protocol.txt §2.1).
inline constexpr std::size_t max_proxy_v1_header = 107;
// Version 2: 16 octets and up to this many more (addresses and TLVs). The
// format allows 65535; a balancer's TLVs (ALPN, authority, TLS details) stay
// far below this.
inline constexpr std::size_t max_proxy_v2_payload = 2048;
inline constexpr std::size_t max_proxy_header = 16 + max_proxy_v2_payload;

struct ProxyHeader {
  int version = 0;  // 1 or 2
  // False for a version 2 LOCAL command (the balancer's own health check),
  // and for UNKNOWN (v1) or an unspecified or unix family (v2): the
  // connection's own addresses stand.
  bool addresses_known = false;
  std::string source_address;  // the client
  std::uint16_t source_port = 0;
  std::string destination_address;  // where the client connected to
  std::uint16_t destination_port = 0;
};

struct ProxyParse {
  enum class Status { incomplete, invalid, complete };
  Status status = Status::incomplete;
  std::size_t length = 0;  // complete: the header's octets
  ProxyHeader header;      // complete
  std::string error;       // invalid: why, for the log
};

ProxyParse parse_proxy_header(std::string_view bytes);

}  // namespace stokend::server
