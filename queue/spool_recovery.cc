// The spool at start: replaying the segments, resynchronising after damage,
// cutting torn tails, and quarantining (with a damage report) what is
// damaged or foreign. See spool.h for the design.
#include <fcntl.h>
#include <spdlog/spdlog.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>

#include "common/durable_file.h"
#include "queue/free_space.h"
#include "queue/record_format.h"
#include "queue/spool.h"
#include "queue/spool_forensics.h"
#include "queue/spool_helpers.h"
#include "queue/spool_key.h"

namespace stokend::queue {

using namespace spool_helpers;

RecoveryReport Spool::open() {
  RecoveryReport report;
  const auto fail = [&](std::error_code error, std::string step) {
    report.error = error;
    report.error_step = std::move(step);
    return std::move(report);
  };
  if (open_) return fail(std::make_error_code(std::errc::operation_in_progress), "open");
  for (const auto& folder : {segments_directory_, quarantine_directory_}) {
    if (auto error = durable::make_directories(folder)) {
      return fail(error, "create " + folder.string());
    }
  }

  // Sort out what is in segments/ (listed first: renaming entries while
  // reading a folder may skip or repeat some).
  std::vector<std::filesystem::path> entries;
  std::error_code listing_error;
  for (std::filesystem::directory_iterator it(segments_directory_, listing_error), end;
       !listing_error && it != end; it.increment(listing_error)) {
    entries.push_back(it->path());
  }
  if (listing_error) return fail(listing_error, "list " + segments_directory_.string());
  std::vector<std::uint64_t> sequences;
  for (const std::filesystem::path& entry : entries) {
    const std::string name = entry.filename().string();
    if (auto sequence = parse_segment_file_name(name)) {
      sequences.push_back(*sequence);
    } else if (is_segment_temporary_name(name)) {
      // A segment whose creation did not finish: it held only a header.
      std::error_code ignored;
      std::filesystem::remove(entry, ignored);
    } else if (!quarantine_file(entry, "not a spool segment")) {
      ++report.files_quarantined;
    }
  }
  std::sort(sequences.begin(), sequences.end());

  {
    std::vector<std::filesystem::path> segment_paths;
    for (std::uint64_t sequence : sequences) {
      segment_paths.push_back(segments_directory_ / segment_file_name(sequence));
    }
    SpoolKeyResult key = load_or_create_spool_key(options_.directory, segment_paths);
    if (!key.key && is_out_of_space(key.error)) {
      // No key yet and no room to make one (spool.h, "Start on a full file
      // system"): run with version 1 records until the next start makes it.
      spdlog::warn("spool: {}: writing unkeyed records until a restart with free space",
                   key.problem);
      keyed_ = false;
      appender_.set_key(nullptr);
    } else if (!key.key) {
      spdlog::error("spool: {}", key.problem);
      return fail(key.error, key.problem);
    } else {
      checksum_key_ = *key.key;
    }
  }

  // Size the index once from the spool's bytes (a message record is
  // rarely under 1 KiB with its headers), not by rehashing as it grows; at
  // most defaults::scan_index_reserve entries, so that a spool of large
  // messages does not make it allocate for messages it does not hold.
  std::uint64_t spool_bytes = 0;
  for (std::uint64_t sequence : sequences) {
    struct stat status {};
    const auto path = segments_directory_ / segment_file_name(sequence);
    if (::stat(path.c_str(), &status) == 0) {
      spool_bytes += static_cast<std::uint64_t>(status.st_size);
    }
  }
  messages_.reserve(static_cast<std::size_t>(
      std::min<std::uint64_t>(spool_bytes / 1024, defaults::scan_index_reserve)));

  // Replay every segment in order.
  Recovery recovered;
  std::unordered_set<std::string> removed;  // ids with a removal record
  struct DamagedSegment {
    std::uint64_t sequence;
    std::string problem;
    std::vector<DamagedRecord> records;
  };
  std::vector<DamagedSegment> damaged;
  // Whether the newest segment is a clean run of records that may be
  // appended to (a start on a full file system, below).
  bool newest_clean = false;
  for (std::size_t position = 0; position < sequences.size(); ++position) {
    const std::uint64_t sequence = sequences[position];
    newest_clean = false;
    const std::filesystem::path path = segments_directory_ / segment_file_name(sequence);
    // With a cold page cache (a machine restart) the scan waits on the disk:
    // have the kernel read the next segment while this one is decoded.
    if (position + 1 < sequences.size()) {
      read_segment_ahead(segments_directory_ / segment_file_name(sequences[position + 1]));
    }
    bool undecodable = false;
    const SegmentReadReport read = read_segment(
        path, options_.max_record_size, &checksum_key_, defaults::resync_scan_budget_factor,
        [&](const record::RawRecord& raw, std::uint64_t offset) {
          ++report.records_read;
          if (raw.type == record::RecordType::removal) {
            if (auto id = record::decode_removal(raw.payload)) removed.insert(*id);
          }
          apply_record(raw, RecordLocation{sequence, offset, raw.size}, recovered, undecodable);
        });
    ++report.segments_read;
    if (read.error) {
      spdlog::error("spool: cannot read {}: {}", path.string(), read.error.message());
      if (!quarantine_file(path, "unreadable")) ++report.files_quarantined;
      continue;
    }
    auto file = std::make_shared<UniqueFd>(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
    SegmentInfo& info = segment_for(sequence, file);
    info.size = read.valid_end;

    // Damage other than a torn tail: what it covered is described (from the
    // bytes themselves) before the file goes anywhere.
    std::vector<DamagedRecord> records;
    std::uint64_t damaged_bytes = 0;
    if (!read.torn_tail() && file->valid()) {
      records = read_damaged_regions(file->get(), segment_file_name(sequence), read.damaged);
      for (const DamagedRegion& region : read.damaged) damaged_bytes += region.length;
    }
    std::vector<std::string> problems;
    if (!read.header) {
      problems.push_back("segment header damaged");
    } else if (read.header->sequence != sequence) {
      problems.push_back("header names segment " + std::to_string(read.header->sequence));
    }
    if (!records.empty()) {
      problems.push_back(std::to_string(damaged_bytes) + " damaged bytes in " +
                         std::to_string(read.damaged.size()) +
                         " places; every record that verifies around them was read");
    }
    for (const DamagedRegion& region : read.damaged) {
      if (region.unkeyed_records > 0) {
        problems.push_back(std::to_string(region.unkeyed_records) +
                           " unkeyed (version 1) records behind the damage at offset " +
                           std::to_string(region.offset) + " not applied");
      }
    }
    if (read.scan_budget_exhausted) problems.push_back("gave up resynchronising");
    if (undecodable) problems.push_back("records with valid checksums but unreadable contents");
    if (!file->valid()) problems.push_back("cannot reopen: " + last_error().message());
    if (!problems.empty()) {
      std::string problem;
      for (const std::string& part : problems) problem += (problem.empty() ? "" : "; ") + part;
      damaged.push_back(DamagedSegment{sequence, std::move(problem), std::move(records)});
      continue;
    }
    bool clean = true;
    if (read.torn_tail()) {
      // An append that never completed (crash, full disk): its requests were
      // never acknowledged. Cut it off so the file is a clean run of records.
      spdlog::warn("spool: {}: discarding {} bytes of an unfinished write at offset {}",
                   path.string(), read.file_size - read.valid_end, read.valid_end);
      UniqueFd writable(::open(path.c_str(), O_WRONLY | O_CLOEXEC));
      if (!writable || ::ftruncate(writable.get(), static_cast<off_t>(read.valid_end)) != 0 ||
          durable::sync_data(writable.get())) {
        spdlog::warn("spool: {}: cannot cut off the unfinished write: {}", path.string(),
                     last_error().message());
        clean = false;
      }
      ++report.torn_tails_discarded;
    }
    newest_clean = clean;
  }

  // Needed-record bookkeeping for everything replayed.
  for (auto& [id, indexed] : messages_) {
    add_reference(indexed.message, id);
    if (indexed.state) add_reference(*indexed.state, id);
  }
  for (auto& [id, tombstone] : tombstones_) add_reference(tombstone.removal, id);

  // Everything new goes to a fresh segment, never behind old, possibly torn,
  // bytes.
  const std::uint64_t next_sequence = sequences.empty() ? 1 : sequences.back() + 1;
  if (auto error = appender_.start_segment(next_sequence, now())) {
    if (!is_out_of_space(error)) {
      return fail(error, "create segment " + segment_file_name(next_sequence));
    }
    // A full file system (spool.h, "Start on a full file system"): start
    // anyway, so that what is queued is delivered and frees space. The
    // newest segment, cut back to its last valid record above, takes the
    // records until a new segment can be created.
    if (newest_clean) {
      if (auto resumed =
              appender_.resume_segment(sequences.back(), segments_.at(sequences.back()).size)) {
        return fail(resumed, "reopen segment " + segment_file_name(sequences.back()));
      }
    } else {
      appender_.start_next_as(next_sequence);
    }
    spdlog::warn("spool: no space for a new segment ({}): {}", error.message(),
                 newest_clean ? "appending to segment " + segment_file_name(sequences.back())
                              : "nothing can be written until space returns");
  } else {
    const std::filesystem::path path = segments_directory_ / segment_file_name(next_sequence);
    auto file = std::make_shared<UniqueFd>(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
    if (!file->valid()) return fail(last_error(), "open " + path.string());
    SegmentInfo& info = segment_for(next_sequence, file);
    struct stat status {};
    if (::fstat(file->get(), &status) == 0) info.size = static_cast<std::uint64_t>(status.st_size);
  }

  std::vector<std::optional<std::filesystem::path>> moved_to;
  for (const DamagedSegment& segment : damaged) {
    moved_to.push_back(
        salvage_and_quarantine(segment.sequence, segment.problem, report.files_quarantined));
  }

  // A message whose data went into quarantine with its segment cannot be
  // delivered from here; say so once, loudly.
  for (auto it = messages_.begin(); it != messages_.end();) {
    if (segments_.contains(it->second.message.segment)) {
      ++it;
      continue;
    }
    spdlog::error("spool: message {} is lost: its data was in a quarantined segment", it->first);
    if (it->second.state) drop_reference(*it->second.state, it->first);
    recovered.live[it->second.recovered_index] = false;
    it = messages_.erase(it);
  }

  for (std::size_t i = 0; i < damaged.size(); ++i) {
    settle_damage(std::move(damaged[i].records), moved_to[i], removed, report);
  }

  report.messages.reserve(messages_.size());
  for (std::size_t i = 0; i < recovered.messages.size(); ++i) {
    if (recovered.live[i]) report.messages.push_back(std::move(recovered.messages[i]));
  }
  // Replay order is nearly arrival order already (compaction copies older
  // messages forward); stable, so equal arrival times keep replay order.
  const auto by_arrival = [](const RecoveredMessage& a, const RecoveredMessage& b) {
    return a.message.arrival < b.message.arrival;
  };
  if (!std::is_sorted(report.messages.begin(), report.messages.end(), by_arrival)) {
    std::stable_sort(report.messages.begin(), report.messages.end(), by_arrival);
  }

  committer_ = std::make_unique<GroupCommitter>(loop_, [this] { return commit_batch(); });
  open_ = true;
  collect_garbage();  // segments emptied before the restart
  spdlog::info(
      "spool: {} messages in {} segments ({} records); {} torn tails cut, {} files "
      "quarantined, {} damaged records, {} messages lost",
      report.messages.size(), report.segments_read, report.records_read,
      report.torn_tails_discarded, report.files_quarantined, report.damaged.size(),
      report.messages_lost);
  return report;
}

void Spool::apply_record(const record::RawRecord& raw, const RecordLocation& location,
                         Recovery& recovered, bool& undecodable) {
  switch (raw.type) {
    case record::RecordType::message: {
      auto message = record::decode_message(raw.payload, /*with_data=*/false);
      if (!message) {
        undecodable = true;
        return;
      }
      segment_for(location.segment, nullptr).message_ids.push_back(message->id);
      if (tombstones_.contains(message->id)) return;  // cannot happen: ids are never reused
      auto [it, inserted] = messages_.try_emplace(message->id);
      IndexedMessage& indexed = it->second;
      // A later copy (compaction) moves the message; its state stays.
      indexed.message = location;
      add_unique(indexed.message_segments, location.segment);
      if (inserted) {
        indexed.recovered_index = static_cast<std::uint32_t>(recovered.messages.size());
        MessageState state = initial_state(*message);
        recovered.messages.push_back(RecoveredMessage{std::move(*message), std::move(state)});
        recovered.live.push_back(true);
      }
      return;
    }
    case record::RecordType::state: {
      auto decoded = record::decode_state(raw.payload);
      if (!decoded) {
        undecodable = true;
        return;
      }
      auto indexed = messages_.find(decoded->id);
      if (indexed == messages_.end()) return;  // a removed message's old state
      RecoveredMessage& entry = recovered.messages[indexed->second.recovered_index];
      if (decoded->state.recipients.size() != entry.message.envelope.recipients.size()) {
        undecodable = true;
        return;
      }
      entry.state = std::move(decoded->state);
      indexed->second.state = location;
      return;
    }
    case record::RecordType::removal: {
      auto id = record::decode_removal(raw.payload);
      if (!id) {
        undecodable = true;
        return;
      }
      auto indexed = messages_.find(*id);
      if (indexed == messages_.end()) return;
      Tombstone tombstone{location, std::move(indexed->second.message_segments)};
      erase_value(tombstone.message_segments, location.segment);
      if (!tombstone.message_segments.empty()) tombstones_[*id] = std::move(tombstone);
      const std::uint32_t index = indexed->second.recovered_index;
      recovered.live[index] = false;
      recovered.messages[index] = RecoveredMessage{};  // its envelope is not needed any more
      messages_.erase(indexed);
      return;
    }
    case record::RecordType::segment_header:
      return;
  }
}

void Spool::settle_damage(std::vector<DamagedRecord> damaged,
                          const std::optional<std::filesystem::path>& moved_to,
                          const std::unordered_set<std::string>& removed, RecoveryReport& report) {
  for (DamagedRecord& record : damaged) {
    const bool live = !record.id.empty() && messages_.contains(record.id);
    if (record.offset == 0) {
      record.outcome = DamageOutcome::header;
    } else if (record.record == "message") {
      if (record.id.empty()) {
        record.outcome = DamageOutcome::unreadable;
      } else if (live) {
        record.outcome = DamageOutcome::recovered;
      } else if (removed.contains(record.id)) {
        record.outcome = DamageOutcome::removed;
      } else {
        record.outcome = DamageOutcome::lost;
        ++report.messages_lost;
      }
    } else if (record.record == "state") {
      record.outcome = live ? DamageOutcome::earlier_state : DamageOutcome::not_needed;
    } else if (record.record == "removal") {
      record.outcome = live ? DamageOutcome::removal_lost : DamageOutcome::not_needed;
    } else {
      record.outcome = DamageOutcome::unreadable;
    }
    if (moved_to) record.file = moved_to->filename().string();
    if (record.outcome == DamageOutcome::lost) {
      spdlog::error("spool: lost {}", describe(record));
    } else if (record.outcome == DamageOutcome::unreadable) {
      spdlog::error("spool: damaged {}; if it held a message, that message is lost",
                    describe(record));
    } else {
      spdlog::warn("spool: damaged {}", describe(record));
    }
  }
  if (moved_to && !damaged.empty()) {
    if (auto error =
            write_damage_report(quarantine_directory_, moved_to->filename().string(), damaged)) {
      spdlog::error("spool: cannot write the damage report for {}: {}", moved_to->string(),
                    error.message());
    }
  }
  for (DamagedRecord& record : damaged) report.damaged.push_back(std::move(record));
}

std::error_code Spool::quarantine_file(const std::filesystem::path& path, std::string_view reason,
                                       std::filesystem::path* moved_to) {
  std::filesystem::path target = quarantine_directory_ / path.filename();
  for (int suffix = 1; ::access(target.c_str(), F_OK) == 0; ++suffix) {
    target = quarantine_directory_ / (path.filename().string() + "." + std::to_string(suffix));
  }
  if (::rename(path.c_str(), target.c_str()) != 0) {
    const std::error_code error = last_error();
    spdlog::error("spool: cannot move {} into quarantine ({}): {}", path.string(), reason,
                  error.message());
    return error;
  }
  // Both folders changed; the move must survive a crash like any other.
  std::error_code error = durable::sync_directory(quarantine_directory_);
  if (auto second = durable::sync_directory(path.parent_path()); !error) error = second;
  spdlog::error("spool: moved {} to {}: {}", path.string(), target.string(), reason);
  if (moved_to) *moved_to = target;
  return error;
}

std::optional<std::filesystem::path> Spool::salvage_and_quarantine(std::uint64_t sequence,
                                                                   std::string_view reason,
                                                                   std::size_t& quarantined) {
  // Copy what the queue still needs out of the damaged segment, make the
  // copies durable, and only then move the file away.
  std::vector<Relocation> relocations = plan_relocations(sequence, /*skip_busy_messages=*/false);
  bool copied_all = true;
  for (const Relocation& relocation : relocations) {
    std::vector<SegmentAppender::Appended> appended;
    for (const std::string& bytes : relocation.records) {
      const std::string_view parts[] = {bytes};
      appended.push_back(appender_.append(parts, now()));
      if (appended.back().error) copied_all = false;
    }
    apply_relocation(relocation, appended);
  }
  if (auto error = appender_.sync()) copied_all = false;
  const std::filesystem::path path = segments_directory_ / segment_file_name(sequence);
  if (!copied_all) {
    // The copies may not be durable: keep the file, untouched by space
    // reclaim, for the next start to try again.
    spdlog::error("spool: {}: {}; could not copy its records out, left in place", path.string(),
                  reason);
    if (auto segment = segments_.find(sequence); segment != segments_.end()) {
      segment->second.busy = true;
    }
    return std::nullopt;
  }
  std::filesystem::path moved_to;
  const std::error_code error = quarantine_file(
      path,
      std::string(reason) + "; " + std::to_string(relocations.size()) + " entries copied out first",
      &moved_to);
  if (moved_to.empty()) return std::nullopt;
  // Moved (even if the folder sync failed): the index must not point at it.
  if (!error) ++quarantined;
  forget_segment(sequence);
  return moved_to;
}

}  // namespace stokend::queue
