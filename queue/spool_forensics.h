// Forensics of a damaged spool: reading what damaged stretches of a segment
// still show, writing the damage report beside the quarantined segment, and
// listing the reports (damage_report.h has the format).
//
// Contract: nothing here changes a segment. read_damaged_regions() trusts
// nothing it reads: whatever it names is unverified. list_quarantine() only
// reads, so stokenctl can run it while the daemon runs or is stopped.
#pragma once

#include <filesystem>
#include <string>
#include <system_error>
#include <vector>

#include "queue/damage_report.h"
#include "queue/segment_file.h"

namespace stokend::queue {

inline constexpr const char* quarantine_folder_name = "quarantine";

// One entry per damaged region of the segment open as `descriptor`, or more
// when the framing header at a region's start still tells where the next
// record began and that one is damaged too. Outcomes are left to the caller
// (unreadable, or header for a region at offset 0).
std::vector<DamagedRecord> read_damaged_regions(int descriptor, const std::string& segment_name,
                                                const std::vector<DamagedRegion>& regions);

// Writes quarantine_directory/<file name><damage_report_suffix> durably, one
// line per record (file is set on each line to `file_name`).
std::error_code write_damage_report(const std::filesystem::path& quarantine_directory,
                                    const std::string& file_name,
                                    std::vector<DamagedRecord> records);

struct QuarantineListing {
  std::error_code error;               // the folder could not be listed (absent is not an error)
  std::vector<DamagedRecord> records;  // from every report, by file then line
  std::vector<std::string> unreported_files;  // quarantined files without a report
  std::vector<std::string> problems;          // report lines that do not parse
};
QuarantineListing list_quarantine(const std::filesystem::path& quarantine_directory);

}  // namespace stokend::queue
