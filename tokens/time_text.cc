// See time_text.h.
#include "tokens/time_text.h"

#include <time.h>

#include <array>
#include <ctime>

namespace stokend::tokens {

std::string iso8601_utc(std::int64_t unix_seconds) {
  const time_t time = static_cast<time_t>(unix_seconds);
  tm broken_down{};
  std::array<char, 64> text{};
  if (::gmtime_r(&time, &broken_down) == nullptr ||
      std::strftime(text.data(), text.size(), "%Y-%m-%dT%H:%M:%SZ", &broken_down) == 0) {
    return "@" + std::to_string(unix_seconds);  // beyond what the C library can show
  }
  return text.data();
}

std::string duration_in_words(std::int64_t seconds) {
  // Unsigned, so that the most negative value has a magnitude too.
  const std::uint64_t length =
      seconds < 0 ? 0 - static_cast<std::uint64_t>(seconds) : static_cast<std::uint64_t>(seconds);
  struct Unit {
    std::uint64_t seconds;
    const char* name;
  };
  static constexpr std::array<Unit, 4> units = {
      {{86400, "day"}, {3600, "hour"}, {60, "minute"}, {1, "second"}}};
  for (const Unit& unit : units) {
    if (length >= unit.seconds || unit.seconds == 1) {
      const std::uint64_t count = length / unit.seconds;
      return std::to_string(count) + " " + unit.name + (count == 1 ? "" : "s");
    }
  }
  return {};
}

}  // namespace stokend::tokens
