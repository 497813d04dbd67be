// See ip_prefix.h.
#include "common/ip_prefix.h"

#include <arpa/inet.h>

#include <cstring>

#include "common/ascii.h"

namespace stokend {
namespace {

struct Address {
  bool v6 = false;
  std::array<std::uint8_t, 16> bytes{};
};

std::optional<Address> parse_address(std::string_view text) {
  if (text.empty() || text.size() >= INET6_ADDRSTRLEN) return std::nullopt;
  const std::string terminated(text);
  Address address;
  if (inet_pton(AF_INET, terminated.c_str(), address.bytes.data()) == 1) return address;
  address.v6 = true;
  if (inet_pton(AF_INET6, terminated.c_str(), address.bytes.data()) == 1) return address;
  return std::nullopt;
}

// ::ffff:a.b.c.d as a.b.c.d (RFC 4291 §2.5.5.2).
Address unmapped(Address address) {
  static constexpr std::uint8_t mapped_prefix[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
  if (!address.v6 || std::memcmp(address.bytes.data(), mapped_prefix, 12) != 0) return address;
  Address v4;
  std::memcpy(v4.bytes.data(), address.bytes.data() + 12, 4);
  return v4;
}

bool same_prefix(const std::array<std::uint8_t, 16>& left,
                 const std::array<std::uint8_t, 16>& right, unsigned length) {
  const unsigned whole = length / 8;
  if (std::memcmp(left.data(), right.data(), whole) != 0) return false;
  const unsigned rest = length % 8;
  if (rest == 0) return true;
  const auto mask = static_cast<std::uint8_t>(0xff << (8 - rest));
  return (left[whole] & mask) == (right[whole] & mask);
}

}  // namespace

std::optional<IpPrefix> IpPrefix::parse(std::string_view text) {
  const std::size_t slash = text.find('/');
  const auto address = parse_address(text.substr(0, slash));
  if (!address) return std::nullopt;
  const unsigned bits = address->v6 ? 128 : 32;
  unsigned length = bits;
  if (slash != std::string_view::npos) {
    const std::string_view digits = text.substr(slash + 1);
    const auto parsed = digits.size() <= 3 ? parse_decimal(digits) : std::nullopt;
    if (!parsed || *parsed > bits) return std::nullopt;
    length = static_cast<unsigned>(*parsed);
  }
  IpPrefix prefix;
  prefix.v6_ = address->v6;
  prefix.length_ = length;
  // Only the network bits are kept; the rest stay zero.
  const unsigned whole = length / 8;
  std::memcpy(prefix.bytes_.data(), address->bytes.data(), whole);
  if (length % 8 != 0) {
    prefix.bytes_[whole] =
        address->bytes[whole] & static_cast<std::uint8_t>(0xff << (8 - length % 8));
  }
  return prefix;
}

bool IpPrefix::contains(std::string_view text) const {
  auto address = parse_address(text);
  if (!address) return false;
  if (!v6_) *address = unmapped(*address);
  if (address->v6 != v6_) return false;
  return same_prefix(bytes_, address->bytes, length_);
}

std::string IpPrefix::to_string() const {
  char text[INET6_ADDRSTRLEN] = "";
  inet_ntop(v6_ ? AF_INET6 : AF_INET, bytes_.data(), text, sizeof text);
  return std::string(text) + "/" + std::to_string(length_);
}

}  // namespace stokend
