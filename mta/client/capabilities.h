// The service extensions a server announced in its EHLO or LHLO reply
// (RFC 5321 §4.1.1.1, RFC 2033 §4.1).
//
// Contract: from_hello_reply() reads every line after the first (which
// carries the server's name). Keywords are case-insensitive and kept in
// upper case with their parameters, so extensions this client does not use
// yet (STOKEN, AUTH, ...) can be looked up later. A reply to HELO, or no
// reply, means no extensions at all.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>

#include "mta/client/reply.h"

namespace stokend::client {

struct Capabilities {
  bool pipelining = false;             // RFC 2920
  bool eight_bit_mime = false;         // RFC 6152
  bool smtputf8 = false;               // RFC 6531
  bool starttls = false;               // RFC 3207
  bool chunking = false;               // RFC 3030
  bool enhanced_status_codes = false;  // RFC 2034
  bool dsn = false;                    // RFC 3461
  bool size_announced = false;         // RFC 1870
  std::uint64_t size_limit = 0;        // 0: no fixed limit declared (RFC 1870 §4)

  // Upper-case keyword -> its parameters as sent (may be empty).
  std::map<std::string, std::string, std::less<>> keywords;

  bool has(std::string_view keyword) const;
  // The AUTH keyword lists this SASL mechanism (RFC 4954 §3), e.g. STOKEN.
  bool offers_sasl(std::string_view mechanism) const;
  std::optional<std::string> parameters(std::string_view keyword) const;

  static Capabilities from_hello_reply(const Reply& reply);
};

}  // namespace stokend::client
