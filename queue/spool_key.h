// The spool's secret checksum key: "checksum.key" in the spool folder, 32
// random bytes (mode 0600), made durably with the spool and kept with it.
//
// Every record the spool writes carries a checksum keyed with it
// (record format version 3, record_format.h), so that bytes a sender put in
// a message cannot pass for a record when recovery resynchronises after
// damage. Spools from before the key get one at their next start; their
// version 1 records stay readable.
//
// Contract: load_or_create_spool_key() never replaces an existing key. A key
// file of the wrong size, or a missing key while segments written with one
// exist, is an error (with a message saying what to restore): making a new
// key then would leave every one of those records unverifiable.
#pragma once

#include <filesystem>
#include <optional>
#include <string>
#include <system_error>
#include <vector>

#include "queue/record_format.h"

namespace stokend::queue {

inline constexpr const char* spool_key_file_name = "checksum.key";

struct SpoolKeyResult {
  std::optional<record::ChecksumKey> key;
  std::error_code error;  // set when key is empty
  std::string problem;    // what went wrong, for the log
};

// segments: the segment files present, checked for keyed records when the
// key file is missing.
SpoolKeyResult load_or_create_spool_key(const std::filesystem::path& spool_directory,
                                        const std::vector<std::filesystem::path>& segments);

}  // namespace stokend::queue
