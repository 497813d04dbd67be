// libFuzzer target for the PROXY protocol header parser
// (mta/server/proxy_protocol.h), which reads the first bytes of every
// connection on a listener behind a load balancer.
//
// Beyond memory safety (the sanitizers), checks (abort on violation): a
// refusal says why; a complete header is no longer than the input nor than
// the limit, and parses the same from exactly its own octets (nothing after
// it was needed); its addresses, when known, are canonical IP text; a
// header that is incomplete stays incomplete or becomes complete or invalid
// as octets are added, never needing more than the limit.
#include <arpa/inet.h>

#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>

#include "mta/server/proxy_protocol.h"

namespace {

using namespace stokend::server;

void require(bool condition) {
  if (!condition) std::abort();
}

bool canonical_address(const std::string& text) {
  unsigned char bytes[16];
  char again[INET6_ADDRSTRLEN];
  for (const int family : {AF_INET, AF_INET6}) {
    if (inet_pton(family, text.c_str(), bytes) == 1) {
      return inet_ntop(family, bytes, again, sizeof again) && text == again;
    }
  }
  return false;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view input(reinterpret_cast<const char*>(data), size);
  const ProxyParse parse = parse_proxy_header(input);
  switch (parse.status) {
    case ProxyParse::Status::invalid:
      require(!parse.error.empty());
      break;
    case ProxyParse::Status::incomplete:
      require(input.size() < max_proxy_header);
      break;
    case ProxyParse::Status::complete: {
      require(parse.length > 0 && parse.length <= input.size() && parse.length <= max_proxy_header);
      const ProxyParse exact = parse_proxy_header(input.substr(0, parse.length));
      require(exact.status == ProxyParse::Status::complete && exact.length == parse.length);
      require(exact.header.source_address == parse.header.source_address);
      if (parse.header.addresses_known) {
        require(canonical_address(parse.header.source_address));
        require(canonical_address(parse.header.destination_address));
      }
      break;
    }
  }
  return 0;
}
