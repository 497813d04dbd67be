// Forensics of a damaged spool: see spool_forensics.h.
#include "queue/spool_forensics.h"

#include <algorithm>
#include <fstream>
#include <set>

#include "common/durable_file.h"
#include "queue/record_format.h"

namespace stokend::queue {
namespace {

// Enough for a record's envelope; the rest of a message is its data.
constexpr std::uint64_t envelope_read_limit = 64 * 1024;

std::string_view record_name(const record::DamagedRecordContents& contents) {
  if (!contents.type) return "unknown";
  switch (*contents.type) {
    case record::RecordType::segment_header:
      return "header";
    case record::RecordType::message:
      return "message";
    case record::RecordType::state:
      return "state";
    case record::RecordType::removal:
      return "removal";
  }
  return "unknown";
}

std::string read_at(int descriptor, std::uint64_t offset, std::uint64_t size) {
  std::string bytes;
  if (read_record_bytes(descriptor, RecordLocation{0, offset, size}, bytes)) return {};
  return bytes;
}

}  // namespace

std::vector<DamagedRecord> read_damaged_regions(int descriptor, const std::string& segment_name,
                                                const std::vector<DamagedRegion>& regions) {
  std::vector<DamagedRecord> found;
  for (const DamagedRegion& region : regions) {
    const std::uint64_t end = region.offset + region.length;
    for (std::uint64_t position = region.offset; position < end;) {
      const std::string bytes =
          read_at(descriptor, position, std::min(end - position, envelope_read_limit));
      // Past the region's start only a record whose magic is intact counts:
      // anything else there is more of the same damage.
      if (position != region.offset && !bytes.starts_with(record::magic)) {
        found.back().length = end - found.back().offset;
        break;
      }
      // The first record of a segment is its header, whatever its damaged
      // type byte now says.
      record::DamagedRecordContents contents;
      if (position == 0) {
        contents.type = record::RecordType::segment_header;
      } else {
        contents = record::read_damaged_record(bytes);
      }
      std::uint64_t next = end;
      if (contents.type && bytes.size() >= record::header_size) {
        next = std::min(end, position + record::claimed_record_size(bytes));
      }
      DamagedRecord damaged;
      damaged.segment = segment_name;
      damaged.offset = position;
      damaged.length = next - position;
      damaged.record = std::string(record_name(contents));
      damaged.id = contents.id;
      damaged.sender = contents.sender;
      damaged.recipients = contents.recipients;
      damaged.recipients_incomplete =
          contents.type == record::RecordType::message && !contents.all_recipients_read;
      damaged.outcome = position == 0 ? DamageOutcome::header : DamageOutcome::unreadable;
      found.push_back(std::move(damaged));
      position = next;
    }
  }
  return found;
}

std::error_code write_damage_report(const std::filesystem::path& quarantine_directory,
                                    const std::string& file_name,
                                    std::vector<DamagedRecord> records) {
  std::string contents;
  for (DamagedRecord& damaged : records) {
    damaged.file = file_name;
    contents += format_damage_line(damaged);
    contents += '\n';
  }
  const std::filesystem::path path =
      quarantine_directory / (file_name + std::string(damage_report_suffix));
  return durable::replace_file(path, contents).error;
}

QuarantineListing list_quarantine(const std::filesystem::path& quarantine_directory) {
  QuarantineListing listing;
  std::set<std::string> names;
  std::error_code error;
  for (std::filesystem::directory_iterator it(quarantine_directory, error), end;
       !error && it != end; it.increment(error)) {
    names.insert(it->path().filename().string());
  }
  if (error == std::errc::no_such_file_or_directory) return listing;
  if (error) {
    listing.error = error;
    return listing;
  }
  for (const std::string& name : names) {
    if (!name.ends_with(damage_report_suffix)) {
      // Temporary files of a report being written are not quarantined files.
      if (name.find(std::string(damage_report_suffix) + ".tmp") != std::string::npos) continue;
      if (!names.contains(name + std::string(damage_report_suffix))) {
        listing.unreported_files.push_back(name);
      }
      continue;
    }
    std::ifstream report(quarantine_directory / name);
    if (!report) {
      listing.problems.push_back(name + ": cannot be read");
      continue;
    }
    std::string line;
    for (std::size_t number = 1; std::getline(report, line); ++number) {
      if (auto damaged = parse_damage_line(line)) {
        listing.records.push_back(std::move(*damaged));
      } else {
        listing.problems.push_back(name + ":" + std::to_string(number) +
                                   ": not a damage report line");
      }
    }
  }
  return listing;
}

}  // namespace stokend::queue
