// Spool segment files: naming, appending records, and reading them back.
//
// A segment is an append-only file of records (record_format.h) whose first
// record is a segment header carrying the segment's sequence number, which is
// also its name: "<16 hex digits>.seg". Segments are created complete with
// their header through durable::write_file (temporary file, fsync, rename,
// folder fsync), so a segment name never points at a file without a header;
// records are then appended and made durable with fdatasync. The active
// segment keeps some space allocated beyond its end (fallocate with
// FALLOC_FL_KEEP_SIZE: readers see only the records), so that appends go on
// for a while when the file system fills up.
//
// Contract: SegmentAppender is used by one thread at a time. read_segment()
// never throws and reports, rather than trusts, anything it cannot parse.
#pragma once

#include <cstdint>
#include <filesystem>
#include <functional>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <system_error>
#include <vector>

#include "queue/queued_message.h"
#include "queue/record_format.h"
#include "queue/unique_fd.h"

namespace stokend::queue {

std::string segment_file_name(std::uint64_t sequence);
// The sequence number of a segment file name, or nothing for any other name.
std::optional<std::uint64_t> parse_segment_file_name(std::string_view name);
// Temporary names durable::write_file uses while creating a segment.
bool is_segment_temporary_name(std::string_view name);

// Where a record lies.
struct RecordLocation {
  std::uint64_t segment = 0;
  std::uint64_t offset = 0;
  std::uint64_t size = 0;
};

// A segment file opened for reading (pread), shared between the spool's index
// and whoever reads from it, so that it stays open while in use.
using SharedFile = std::shared_ptr<const UniqueFd>;

// Appends records to the active segment and starts new ones.
class SegmentAppender {
 public:
  // data_sync makes one file's appended data durable (fdatasync by default);
  // tests substitute a counting one.
  using DataSync = std::function<std::error_code(int descriptor)>;

  SegmentAppender(std::filesystem::path directory, std::size_t segment_size, DataSync data_sync);

  // Creates segment `sequence` durably and makes it the active one.
  std::error_code start_segment(std::uint64_t sequence, TimePoint now);
  // Appends to the existing segment `sequence`, `size` bytes long and a clean
  // run of records, instead of starting a new one: for a start on a full
  // file system, where no new segment can be created (spool.h).
  std::error_code resume_segment(std::uint64_t sequence, std::uint64_t size);
  // No active segment: the next append starts segment `sequence` (used when
  // neither a new segment can be created nor the newest resumed).
  void start_next_as(std::uint64_t sequence);

  struct Appended {
    std::error_code error;
    RecordLocation location;
    SharedFile file;  // the segment written to
  };
  // Appends one record (as pieces) to the active segment, first starting the
  // next segment when the active one is full or unusable. Not yet durable:
  // see sync(). Out of space (ENOSPC, EDQUOT), the active segment stays in
  // use: a full one grows past segment_size rather than fail a write that
  // fits, and one whose write failed for space is cut back to its last
  // record and written to again once space returns.
  Appended append(std::span<const std::string_view> parts, TimePoint now);

  // Makes everything appended since the last sync durable: one fdatasync per
  // segment written to (one, or two across a segment change).
  std::error_code sync();

  std::uint64_t active_sequence() const { return active_sequence_; }
  std::size_t data_sync_calls() const { return data_sync_calls_; }

 private:
  // Keeps defaults::segment_headroom allocated beyond the active segment's
  // end (spool.h, "Start on a full file system").
  void keep_headroom();

  std::filesystem::path directory_;
  std::size_t segment_size_;
  DataSync data_sync_;
  std::uint64_t active_sequence_ = 0;
  SharedFile active_file_;
  std::uint64_t active_size_ = 0;
  std::uint64_t allocated_end_ = 0;  // the active segment's space allocated so far
  bool active_unusable_ = false;     // a write failed: continue in a fresh segment
  std::vector<SharedFile> unsynced_;
  std::size_t data_sync_calls_ = 0;
};

// What reading a whole segment file found.
struct SegmentReadReport {
  std::error_code error;  // the file could not be read at all
  std::optional<record::SegmentHeader> header;
  std::uint64_t file_size = 0;
  std::uint64_t valid_end = 0;  // end of the last record read before any damage
  bool damaged = false;         // some bytes after valid_end are no valid record
  // Valid records found after the damage (not applied, see read_segment).
  std::uint64_t records_after_damage = 0;
  // Damage only at the end, after the last valid record: an unfinished
  // append (crash, full disk), safe to cut off. A missing header or valid
  // records behind the damage mean corruption instead.
  bool torn_tail() const { return damaged && records_after_damage == 0 && header.has_value(); }
};

// Reads a segment file and calls on_record for every valid record after the
// header, in file order, with its offset, up to the first damage. Behind
// damage it only counts what still looks valid, and applies none of it:
// record boundaries are lost there, and message data can hold bytes that
// look like a record (a sender could even craft one), so only records
// reached by following lengths from the header are trusted.
SegmentReadReport read_segment(
    const std::filesystem::path& path, std::size_t max_record_size,
    const std::function<void(const record::RawRecord&, std::uint64_t offset)>& on_record);

// Reads `location.size` bytes at `location.offset`: one whole record.
std::error_code read_record_bytes(int descriptor, const RecordLocation& location,
                                  std::string& bytes);

}  // namespace stokend::queue
