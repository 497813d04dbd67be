// IpPrefix: an IPv4 or IPv6 network given as an address with an optional
// prefix length ("10.1.0.0/16", "::1", "192.0.2.7"), and the test whether an
// address lies in it. Used for lists of trusted peers, e.g. the proxies
// allowed to send a PROXY protocol header.
//
// Contract: parse() accepts only canonical-enough text: an address inet_pton
// reads and a decimal length within the family's bits; the host bits beyond
// the length are ignored (10.1.2.3/16 means 10.1.0.0/16). An IPv4 prefix
// also matches the IPv4-mapped IPv6 form of its addresses (::ffff:a.b.c.d),
// as a dual-stack socket reports them.
#pragma once

#include <array>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace stokend {

class IpPrefix {
 public:
  static std::optional<IpPrefix> parse(std::string_view text);

  // address: an IPv4 or IPv6 literal; false when it is neither.
  bool contains(std::string_view address) const;
  std::string to_string() const;  // "10.1.0.0/16"

  bool operator==(const IpPrefix&) const = default;

 private:
  bool v6_ = false;
  std::array<std::uint8_t, 16> bytes_{};  // IPv4 in the first 4
  unsigned length_ = 0;
};

}  // namespace stokend
