// CRC-32C (Castagnoli, polynomial 0x1EDC6F41, reflected; RFC 3720 §B.4):
// the error-detecting code the spool's records carry over their bytes
// (queue/record_format.h). Chosen over a cryptographic hash for that job
// because x86-64 (SSE 4.2) computes it in hardware at several gigabytes per
// second, so checksumming a large message costs microseconds, not the
// fraction of a millisecond BLAKE2b takes.
//
// Contract: pure, never throws; crc32c("123456789") == 0xE3069283 (the
// check value). extend_crc32c() continues a CRC over further bytes, so
// crc32c(a + b) == extend_crc32c(crc32c(a), b). The hardware path is chosen
// once at run time; machines without it get a table-driven fallback that
// gives the same values.
#pragma once

#include <cstdint>
#include <string_view>

namespace stokend {

std::uint32_t extend_crc32c(std::uint32_t crc, std::string_view bytes);

inline std::uint32_t crc32c(std::string_view bytes) { return extend_crc32c(0, bytes); }

// The table-driven path alone, whatever the machine has (for the tests).
std::uint32_t extend_crc32c_portable(std::uint32_t crc, std::string_view bytes);

}  // namespace stokend
