// Unit tests for CRC-32C (common/crc32c.h).
#include "common/crc32c.h"

#include <catch2/catch.hpp>
#include <cstdint>
#include <string>

using namespace stokend;

namespace {

// The definition, one bit at a time, to compare the fast paths with.
std::uint32_t bitwise_crc32c(std::string_view bytes) {
  std::uint32_t crc = 0xFFFFFFFF;
  for (unsigned char byte : bytes) {
    crc ^= byte;
    for (int bit = 0; bit < 8; ++bit) crc = (crc >> 1) ^ ((crc & 1) ? 0x82F63B78 : 0);
  }
  return ~crc;
}

}  // namespace

TEST_CASE("crc32c: the check value and RFC 3720 test vectors", "[common]") {
  CHECK(crc32c("") == 0);
  CHECK(crc32c("123456789") == 0xE3069283);
  CHECK(crc32c(std::string(32, '\0')) == 0x8A9136AA);    // RFC 3720 §B.4: 32 bytes of zeros
  CHECK(crc32c(std::string(32, '\xff')) == 0x62A8AB43);  // 32 bytes of ones
}

TEST_CASE("crc32c: every length and alignment agrees with the definition", "[common]") {
  std::string data;
  for (int i = 0; i < 300; ++i) data.push_back(static_cast<char>((i * 131 + 7) & 0xFF));
  for (std::size_t start = 0; start < 9; ++start) {
    for (std::size_t length = 0; start + length <= data.size(); length += 7) {
      const std::string_view piece = std::string_view(data).substr(start, length);
      INFO("start " << start << " length " << length);
      CHECK(crc32c(piece) == bitwise_crc32c(piece));
      CHECK(extend_crc32c_portable(0, piece) == bitwise_crc32c(piece));
    }
  }
}

TEST_CASE("crc32c: extending over a split gives the CRC of the whole", "[common]") {
  const std::string data = "Subject: a message in two pieces\r\n\r\nhello\r\n";
  for (std::size_t split = 0; split <= data.size(); ++split) {
    const std::string_view whole(data);
    CHECK(extend_crc32c(crc32c(whole.substr(0, split)), whole.substr(split)) == crc32c(whole));
  }
}
