// See message_id.h.
#include "mta/message_id.h"

#include <sodium.h>

#include <atomic>
#include <chrono>
#include <cstdint>

namespace stokend {
namespace {

// Crockford's base32: no I, L, O, U, so ids read back unambiguously.
constexpr char alphabet[] = "0123456789ABCDEFGHJKMNPQRSTVWXYZ";

void append_base32(std::string& out, std::uint64_t value, int digits) {
  for (int shift = (digits - 1) * 5; shift >= 0; shift -= 5) {
    out += alphabet[(value >> shift) & 31];
  }
}

}  // namespace

std::string new_message_id() {
  static std::atomic<std::uint32_t> counter{0};
  auto micros = std::chrono::duration_cast<std::chrono::microseconds>(
                    std::chrono::system_clock::now().time_since_epoch())
                    .count();
  std::string id;
  append_base32(id, static_cast<std::uint64_t>(micros), 11);  // 55 bits: until year 3100
  append_base32(id, (counter++ & 0x3ff) << 15 | (randombytes_random() & 0x7fff), 5);
  return id;
}

std::string new_session_id() {
  std::string id;
  append_base32(id, randombytes_random(), 6);
  return id;
}

}  // namespace stokend
