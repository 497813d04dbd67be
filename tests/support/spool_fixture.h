// Helpers shared by the spool's tests (queue/spool.h): the options of a spool
// in a folder, on the clock of a hand-driven loop, and the checksum key the
// spool keeps in its folder (queue/spool_key.h).
#pragma once

#include <algorithm>
#include <catch2/catch.hpp>
#include <filesystem>
#include <string>

#include "queue/record_format.h"
#include "queue/spool.h"
#include "queue/spool_key.h"
#include "tests/support/files.h"
#include "tests/support/manual_event_loop.h"

namespace stokend::testing {

inline queue::SpoolOptions spool_options(const std::filesystem::path& directory,
                                         queue::ManualEventLoop& loop) {
  queue::SpoolOptions options;
  options.directory = directory;
  options.clock = loop.clock();
  return options;
}

// The checksum key of the spool in `directory`; the test fails without one.
inline queue::record::ChecksumKey spool_checksum_key(const std::filesystem::path& directory) {
  const std::string bytes = read_whole_file(directory / queue::spool_key_file_name);
  queue::record::ChecksumKey key;
  REQUIRE(bytes.size() == key.bytes.size());
  std::copy(bytes.begin(), bytes.end(), key.bytes.begin());
  return key;
}

}  // namespace stokend::testing
