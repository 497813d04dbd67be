// Times and durations in words, for verification reasons, logs and
// stokenctl: "2026-11-22T10:00:00Z", "3 days".
//
// Contract: pure functions, never throw.
#pragma once

#include <cstdint>
#include <string>

namespace stokend::tokens {

// ISO 8601 in UTC with a 'Z', e.g. "2026-11-22T10:00:00Z".
std::string iso8601_utc(std::int64_t unix_seconds);

// A length of time rounded down to its largest whole unit: "1 second",
// "59 minutes", "2 hours", "400 days". Negative lengths read as positive.
std::string duration_in_words(std::int64_t seconds);

}  // namespace stokend::tokens
