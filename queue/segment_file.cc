// Segment files: see segment_file.h.
#include "queue/segment_file.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <charconv>
#include <cstdio>

#include "common/durable_file.h"
#include "queue/free_space.h"
#include "queue/queue_defaults.h"

namespace stokend::queue {
namespace {

constexpr std::string_view segment_suffix = ".seg";
constexpr std::string_view temporary_suffix = ".seg.tmp";
constexpr std::size_t sequence_digits = 16;

std::error_code last_error() { return {errno, std::system_category()}; }

bool all_hex(std::string_view text) {
  for (char c : text) {
    if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'))) return false;
  }
  return true;
}

std::error_code read_whole_file(int descriptor, std::string& contents) {
  struct stat status {};
  if (::fstat(descriptor, &status) != 0) return last_error();
  contents.resize(static_cast<std::size_t>(status.st_size));
  std::size_t done = 0;
  while (done < contents.size()) {
    const ssize_t count = ::pread(descriptor, contents.data() + done, contents.size() - done,
                                  static_cast<off_t>(done));
    if (count < 0) {
      if (errno == EINTR) continue;
      return last_error();
    }
    if (count == 0) break;  // shrank meanwhile: read what is there
    done += static_cast<std::size_t>(count);
  }
  contents.resize(done);
  return {};
}

}  // namespace

std::string segment_file_name(std::uint64_t sequence) {
  char name[sequence_digits + 1];
  std::snprintf(name, sizeof name, "%016llx", static_cast<unsigned long long>(sequence));
  return std::string(name) + std::string(segment_suffix);
}

std::optional<std::uint64_t> parse_segment_file_name(std::string_view name) {
  if (name.size() != sequence_digits + segment_suffix.size()) return std::nullopt;
  if (!name.ends_with(segment_suffix)) return std::nullopt;
  const std::string_view digits = name.substr(0, sequence_digits);
  if (!all_hex(digits)) return std::nullopt;
  std::uint64_t sequence = 0;
  std::from_chars(digits.data(), digits.data() + digits.size(), sequence, 16);
  return sequence;
}

bool is_segment_temporary_name(std::string_view name) {
  return name.size() == sequence_digits + temporary_suffix.size() &&
         name.ends_with(temporary_suffix) && all_hex(name.substr(0, sequence_digits));
}

SegmentAppender::SegmentAppender(std::filesystem::path directory, std::size_t segment_size,
                                 DataSync data_sync, const record::ChecksumKey* key)
    : directory_(std::move(directory)),
      segment_size_(segment_size),
      data_sync_(std::move(data_sync)),
      key_(key) {}

std::error_code SegmentAppender::start_segment(std::uint64_t sequence, TimePoint now) {
  const std::string name = segment_file_name(sequence);
  const std::filesystem::path final_path = directory_ / name;
  std::filesystem::path temporary_path = directory_ / name;
  temporary_path += ".tmp";
  const record::EncodedRecord header = record::encode_segment_header(sequence, now, key_);
  const auto parts = header.parts();
  // The header is written like any durable file, so a segment name never
  // exists without its header and the folder entry survives a crash.
  if (auto result = durable::write_file(temporary_path, final_path, parts); !result) {
    return result.error;
  }
  auto file = std::make_shared<UniqueFd>(::open(final_path.c_str(), O_RDWR | O_APPEND | O_CLOEXEC));
  if (!file->valid()) return last_error();
  active_file_ = std::move(file);
  active_sequence_ = sequence;
  active_size_ = header.size();
  allocated_end_ = active_size_;
  active_unusable_ = false;
  keep_headroom();
  return {};
}

void SegmentAppender::keep_headroom() {
  constexpr std::uint64_t headroom = defaults::segment_headroom;
  if (active_size_ + headroom / 2 <= allocated_end_) return;
  // Best effort: a file system without fallocate (EOPNOTSUPP) or already
  // full (ENOSPC) simply has no headroom; the appends themselves tell.
  if (::fallocate(active_file_->get(), FALLOC_FL_KEEP_SIZE, static_cast<off_t>(active_size_),
                  static_cast<off_t>(headroom)) == 0) {
    allocated_end_ = active_size_ + headroom;
  }
}

std::error_code SegmentAppender::resume_segment(std::uint64_t sequence, std::uint64_t size) {
  const std::filesystem::path path = directory_ / segment_file_name(sequence);
  auto file = std::make_shared<UniqueFd>(::open(path.c_str(), O_RDWR | O_APPEND | O_CLOEXEC));
  if (!file->valid()) return last_error();
  active_file_ = std::move(file);
  active_sequence_ = sequence;
  active_size_ = size;
  // Space an earlier run allocated beyond the end is still there (unless a
  // torn tail was cut off); on a full file system the top-up fails.
  allocated_end_ = size;
  active_unusable_ = false;
  keep_headroom();
  return {};
}

void SegmentAppender::start_next_as(std::uint64_t sequence) {
  active_file_.reset();
  active_sequence_ = sequence - 1;
  active_size_ = 0;
  active_unusable_ = false;
}

SegmentAppender::Appended SegmentAppender::append(std::span<const std::string_view> parts,
                                                  TimePoint now) {
  Appended result;
  if (!active_file_ || active_unusable_ || active_size_ >= segment_size_) {
    if (auto error = start_segment(active_sequence_ + 1, now)) {
      // A full active segment still takes records while the file system has
      // no room for a new one (its headroom may, and freed space will).
      const bool keep_active = active_file_ && !active_unusable_ && is_out_of_space(error);
      if (!keep_active) {
        result.error = error;
        return result;
      }
    }
  }
  std::uint64_t size = 0;
  for (std::string_view part : parts) size += part.size();
  const std::uint64_t offset = active_size_;
  if (auto error = durable::write_all(active_file_->get(), parts)) {
    // Cut the partial record off so the file stays a clean run of records;
    // should that fail too, the reader treats the rest as a torn tail. The
    // next record goes to a fresh segment, except when this one ran out of
    // space and was cut back cleanly: it is fine, and a new segment would
    // need space too.
    const bool cut_back = ::ftruncate(active_file_->get(), static_cast<off_t>(offset)) == 0;
    active_unusable_ = !(cut_back && is_out_of_space(error));
    if (!active_unusable_) {
      // The cut also gave back whatever headroom the record had used: take
      // it again, for the state records that must still fit.
      allocated_end_ = offset;
      keep_headroom();
    }
    result.error = error;
    return result;
  }
  active_size_ += size;
  keep_headroom();
  if (unsynced_.empty() || unsynced_.back() != active_file_) unsynced_.push_back(active_file_);
  result.location = RecordLocation{active_sequence_, offset, size};
  result.file = active_file_;
  return result;
}

std::error_code SegmentAppender::sync() {
  std::error_code first_error;
  for (const SharedFile& file : unsynced_) {
    ++data_sync_calls_;
    if (auto error = data_sync_(file->get())) {
      if (!first_error) first_error = error;
      // After a failed fdatasync the kernel may have dropped the dirty pages;
      // nothing more is appended to this file.
      if (file == active_file_) active_unusable_ = true;
    }
  }
  unsynced_.clear();
  return first_error;
}

void read_segment_ahead(const std::filesystem::path& path) {
  UniqueFd file(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
  // Advice only: the scan reads the file the ordinary way either way.
  if (file) (void)::posix_fadvise(file.get(), 0, 0, POSIX_FADV_WILLNEED);
}

SegmentReadReport read_segment(
    const std::filesystem::path& path, std::size_t max_record_size, const record::ChecksumKey* key,
    std::size_t scan_budget_factor,
    const std::function<void(const record::RawRecord&, std::uint64_t offset)>& on_record) {
  SegmentReadReport report;
  UniqueFd file(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
  if (!file) {
    report.error = last_error();
    return report;
  }
  std::string contents;
  if (auto error = read_whole_file(file.get(), contents)) {
    report.error = error;
    return report;
  }
  const std::string_view bytes = contents;
  report.file_size = bytes.size();
  std::uint64_t scan_budget = static_cast<std::uint64_t>(bytes.size()) * scan_budget_factor;

  std::size_t offset = 0;
  if (auto first = record::parse_record(bytes, max_record_size, key);
      first && first->type == record::RecordType::segment_header) {
    report.header = record::decode_segment_header(first->payload);
    if (report.header) offset = first->size;
  }
  report.valid_end = offset;
  bool in_damage = !report.header;
  while (offset < bytes.size()) {
    if (!in_damage) {
      auto next = record::parse_record(bytes.substr(offset), max_record_size, key);
      if (!next) {
        in_damage = true;
        continue;
      }
      // A header inside a segment is misplaced but harmless: skip it.
      if (next->type != record::RecordType::segment_header) on_record(*next, offset);
      offset += next->size;
      report.valid_end = offset;
      continue;
    }
    // Resynchronise: scan the bytes that did not verify for the next keyed
    // record. Unkeyed ones are counted only, and the scan goes on inside
    // them: their lengths are not to be trusted either.
    DamagedRegion region{offset, 0, 0};
    std::size_t candidate = record::find_magic(bytes, offset + 1);
    for (; candidate < bytes.size(); candidate = record::find_magic(bytes, candidate + 1)) {
      const std::string_view rest = bytes.substr(candidate);
      const auto cost = record::plausible_record_size(rest, max_record_size, key);
      if (!cost) continue;
      if (*cost > scan_budget) {
        report.scan_budget_exhausted = true;
        candidate = bytes.size();
        break;
      }
      scan_budget -= *cost;
      auto found = record::parse_record(rest, max_record_size, key);
      if (!found) continue;
      if (found->keyed) break;
      ++region.unkeyed_records;
    }
    region.length = candidate - offset;
    region.cut_short = region.length < record::header_size ||
                       record::claimed_record_size(bytes.substr(offset)) > region.length;
    report.damaged.push_back(region);
    offset = candidate;
    in_damage = false;
  }
  return report;
}

std::error_code read_record_bytes(int descriptor, const RecordLocation& location,
                                  std::string& bytes) {
  bytes.resize(location.size);
  std::size_t done = 0;
  while (done < bytes.size()) {
    const ssize_t count = ::pread(descriptor, bytes.data() + done, bytes.size() - done,
                                  static_cast<off_t>(location.offset + done));
    if (count < 0) {
      if (errno == EINTR) continue;
      return last_error();
    }
    if (count == 0) return std::make_error_code(std::errc::io_error);  // file shorter than recorded
    done += static_cast<std::size_t>(count);
  }
  return {};
}

}  // namespace stokend::queue
