// CRC-32C: see crc32c.h.
#include "common/crc32c.h"

#include <array>
#include <cstring>

#if defined(__x86_64__)
#include <nmmintrin.h>
#endif

namespace stokend {
namespace {

constexpr std::uint32_t reflected_polynomial = 0x82F63B78;

// Slicing-by-8 tables: table[k][b] is the CRC of byte b followed by k zero bytes.
using Tables = std::array<std::array<std::uint32_t, 256>, 8>;

constexpr Tables make_tables() {
  Tables tables{};
  for (std::uint32_t byte = 0; byte < 256; ++byte) {
    std::uint32_t crc = byte;
    for (int bit = 0; bit < 8; ++bit) crc = (crc >> 1) ^ ((crc & 1) ? reflected_polynomial : 0);
    tables[0][byte] = crc;
  }
  for (std::size_t k = 1; k < tables.size(); ++k) {
    for (std::size_t byte = 0; byte < 256; ++byte) {
      const std::uint32_t previous = tables[k - 1][byte];
      tables[k][byte] = (previous >> 8) ^ tables[0][previous & 0xFF];
    }
  }
  return tables;
}

constexpr Tables tables = make_tables();

std::uint64_t load_little_endian_64(const unsigned char* bytes) {
  std::uint64_t value = 0;
  for (int i = 7; i >= 0; --i) value = (value << 8) | bytes[i];
  return value;
}

// Works on the inverted CRC, as both paths do.
std::uint32_t portable(std::uint32_t crc, const unsigned char* bytes, std::size_t size) {
  while (size >= 8) {
    const std::uint64_t word = load_little_endian_64(bytes) ^ crc;
    crc = tables[7][word & 0xFF] ^ tables[6][(word >> 8) & 0xFF] ^ tables[5][(word >> 16) & 0xFF] ^
          tables[4][(word >> 24) & 0xFF] ^ tables[3][(word >> 32) & 0xFF] ^
          tables[2][(word >> 40) & 0xFF] ^ tables[1][(word >> 48) & 0xFF] ^ tables[0][word >> 56];
    bytes += 8;
    size -= 8;
  }
  while (size-- > 0) crc = (crc >> 8) ^ tables[0][(crc ^ *bytes++) & 0xFF];
  return crc;
}

#if defined(__x86_64__)
__attribute__((target("sse4.2"))) std::uint32_t hardware(std::uint32_t crc,
                                                         const unsigned char* bytes,
                                                         std::size_t size) {
  std::uint64_t wide = crc;
  while (size >= 8) {
    std::uint64_t word;
    std::memcpy(&word, bytes, sizeof word);  // x86-64 is little-endian, as CRC-32C reads
    wide = _mm_crc32_u64(wide, word);
    bytes += 8;
    size -= 8;
  }
  auto narrow = static_cast<std::uint32_t>(wide);
  while (size-- > 0) narrow = _mm_crc32_u8(narrow, *bytes++);
  return narrow;
}

using Implementation = std::uint32_t (*)(std::uint32_t, const unsigned char*, std::size_t);

Implementation choose() { return __builtin_cpu_supports("sse4.2") ? hardware : portable; }
#endif

}  // namespace

std::uint32_t extend_crc32c(std::uint32_t crc, std::string_view bytes) {
  const auto* data = reinterpret_cast<const unsigned char*>(bytes.data());
#if defined(__x86_64__)
  static const Implementation implementation = choose();
  return ~implementation(~crc, data, bytes.size());
#else
  return ~portable(~crc, data, bytes.size());
#endif
}

std::uint32_t extend_crc32c_portable(std::uint32_t crc, std::string_view bytes) {
  return ~portable(~crc, reinterpret_cast<const unsigned char*>(bytes.data()), bytes.size());
}

}  // namespace stokend
