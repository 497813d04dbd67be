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
// Reading back resynchronises after damage: where following record lengths
// runs into bytes that do not verify, the reader scans forward for the next
// record that does, so damage costs only the records it touches. What it
// takes from a scan must be a keyed (version 2 or 3) record: message data is
// chosen by senders, and only the spool's key tells a real record from bytes
// crafted to look like one inside a damaged message. Records a scan finds
// are never inside a record that verified, since only bytes that did not
// verify are scanned. An unkeyed (version 1) record found by a scan is
// counted, not applied.
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

#include "common/unique_fd.h"
#include "queue/queued_message.h"
#include "queue/record_format.h"

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

  // key: the spool's checksum key, filled in before the first segment is
  // started and outliving the appender.
  SegmentAppender(std::filesystem::path directory, std::size_t segment_size, DataSync data_sync,
                  const record::ChecksumKey* key);

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
  // The key for the records it writes from now on (null: version 1).
  void set_key(const record::ChecksumKey* key) { key_ = key; }
  std::size_t data_sync_calls() const { return data_sync_calls_; }

 private:
  // Keeps defaults::segment_headroom allocated beyond the active segment's
  // end (spool.h, "Start on a full file system").
  void keep_headroom();

  std::filesystem::path directory_;
  std::size_t segment_size_;
  DataSync data_sync_;
  const record::ChecksumKey* key_;
  std::uint64_t active_sequence_ = 0;
  SharedFile active_file_;
  std::uint64_t active_size_ = 0;
  std::uint64_t allocated_end_ = 0;  // the active segment's space allocated so far
  bool active_unusable_ = false;     // a write failed: continue in a fresh segment
  std::vector<SharedFile> unsynced_;
  std::size_t data_sync_calls_ = 0;
};

// Bytes of a segment where no record verifies, from where a record should
// have started to the next record that verifies (or the end of the file).
struct DamagedRegion {
  std::uint64_t offset = 0;
  std::uint64_t length = 0;
  // Unkeyed (version 1) records inside, found by the scan and not applied.
  std::uint64_t unkeyed_records = 0;
  // The record at its start claims more bytes than the file has left: an
  // append cut short, not a complete record damaged afterwards.
  bool cut_short = false;
};

// What reading a whole segment file found.
struct SegmentReadReport {
  std::error_code error;  // the file could not be read at all
  std::optional<record::SegmentHeader> header;
  std::uint64_t file_size = 0;
  std::uint64_t valid_end = 0;         // end of the last record read
  std::vector<DamagedRegion> damaged;  // in file order; the first at 0 when the header is bad
  bool scan_budget_exhausted = false;  // the last region was given up on, see read_segment
  // Damage only at the end, after the last valid record, and a record there
  // cut short: an unfinished append (crash, full disk), safe to cut off. A
  // missing header, damage with records behind it, or a last record that is
  // complete but does not verify mean corruption instead.
  bool torn_tail() const {
    return header.has_value() && damaged.size() == 1 && damaged[0].unkeyed_records == 0 &&
           damaged[0].cut_short && damaged[0].offset == valid_end &&
           damaged[0].offset + damaged[0].length == file_size;
  }
};

// Asks the kernel to start reading a segment into the page cache
// (posix_fadvise WILLNEED) and returns at once; nothing happens when the
// file cannot be opened. For the start-up scan, one segment ahead.
void read_segment_ahead(const std::filesystem::path& path);

// Reads a segment file and calls on_record for every valid record but
// segment headers, in file order, with its offset: those reached by
// following record lengths from the header, and after damage those reached
// from the next keyed record a scan finds (see above). A damaged header does
// not stop it: the records behind it are read the same way. Checking a
// candidate costs a checksum over its claimed length; the scans of one file
// check at most scan_budget_factor times its size, so that message data full
// of fake record starts cannot stall the start (the rest then counts as
// damaged).
SegmentReadReport read_segment(
    const std::filesystem::path& path, std::size_t max_record_size, const record::ChecksumKey* key,
    std::size_t scan_budget_factor,
    const std::function<void(const record::RawRecord&, std::uint64_t offset)>& on_record);

// Reads `location.size` bytes at `location.offset`: one whole record.
std::error_code read_record_bytes(int descriptor, const RecordLocation& location,
                                  std::string& bytes);

}  // namespace stokend::queue
