// The DNS resource record types the resolver asks for (RFC 1035 section 3.2.2,
// RFC 3596 for AAAA, RFC 2782 for SRV), and their names for messages.
#pragma once

#include <cstdint>
#include <string_view>

namespace stokend::dns {

enum class RecordType : std::uint16_t {
  a = 1,
  soa = 6,
  mx = 15,
  txt = 16,
  aaaa = 28,
  srv = 33,
};

constexpr std::string_view to_string(RecordType type) {
  switch (type) {
    case RecordType::a:
      return "A";
    case RecordType::soa:
      return "SOA";
    case RecordType::mx:
      return "MX";
    case RecordType::txt:
      return "TXT";
    case RecordType::aaaa:
      return "AAAA";
    case RecordType::srv:
      return "SRV";
  }
  return "?";
}

}  // namespace stokend::dns
