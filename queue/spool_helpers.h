// Small helpers shared by the spool's source files (spool.cc,
// spool_recovery.cc, spool_reclaim.cc); not part of the queue's interface.
#pragma once

#include <algorithm>
#include <cerrno>
#include <cstdint>
#include <string>
#include <system_error>
#include <vector>

#include "queue/queued_message.h"
#include "queue/record_format.h"

namespace stokend::queue::spool_helpers {

inline std::error_code last_error() { return {errno, std::system_category()}; }

inline void erase_value(std::vector<std::uint64_t>& values, std::uint64_t value) {
  values.erase(std::remove(values.begin(), values.end(), value), values.end());
}

inline void add_unique(std::vector<std::uint64_t>& values, std::uint64_t value) {
  if (std::find(values.begin(), values.end(), value) == values.end()) values.push_back(value);
}

// One record's bytes in one piece.
inline std::string join_record(const record::EncodedRecord& encoded) {
  std::string bytes;
  bytes.reserve(encoded.size());
  for (std::string_view part : encoded.parts()) bytes.append(part);
  return bytes;
}

}  // namespace stokend::queue::spool_helpers
