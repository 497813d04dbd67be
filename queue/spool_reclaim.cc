// The spool's space reclaim: which records each segment still needs,
// compaction (copying them forward) and deletion of segments that need
// nothing. See spool.h for the rules that keep this crash-safe.
#include <spdlog/spdlog.h>
#include <unistd.h>

#include <algorithm>

#include "queue/record_format.h"
#include "queue/spool.h"
#include "queue/spool_helpers.h"

namespace stokend::queue {

using namespace spool_helpers;

Spool::SegmentInfo& Spool::segment_for(std::uint64_t sequence, const SharedFile& file) {
  SegmentInfo& info = segments_[sequence];
  if (file && !info.file) info.file = file;
  return info;
}

void Spool::note_appended(const SegmentAppender::Appended& appended) {
  SegmentInfo& info = segment_for(appended.location.segment, appended.file);
  info.size = std::max(info.size, appended.location.offset + appended.location.size);
}

void Spool::add_reference(const RecordLocation& location, const std::string& id) {
  SegmentInfo& info = segments_[location.segment];
  ++info.holders[id];
  info.live_bytes += location.size;
}

void Spool::drop_reference(const RecordLocation& location, const std::string& id) {
  auto segment = segments_.find(location.segment);
  if (segment == segments_.end()) return;
  SegmentInfo& info = segment->second;
  auto holder = info.holders.find(id);
  if (holder == info.holders.end()) return;
  if (--holder->second == 0) info.holders.erase(holder);
  info.live_bytes -= std::min(info.live_bytes, location.size);
}

void Spool::make_tombstone(const std::string& id, const RecordLocation& removal) {
  auto indexed = messages_.find(id);
  if (indexed == messages_.end()) return;
  drop_reference(indexed->second.message, id);
  if (indexed->second.state) drop_reference(*indexed->second.state, id);
  Tombstone tombstone{removal, std::move(indexed->second.message_segments)};
  messages_.erase(indexed);
  erase_value(tombstone.message_segments, removal.segment);
  // Needed only while an older segment still holds the message's data.
  if (tombstone.message_segments.empty()) return;
  add_reference(removal, id);
  tombstones_[id] = std::move(tombstone);
}

void Spool::forget_segment(std::uint64_t sequence) {
  auto segment = segments_.find(sequence);
  if (segment == segments_.end()) return;
  const std::vector<std::string> ids = std::move(segment->second.message_ids);
  segments_.erase(segment);
  for (const std::string& id : ids) {
    if (auto indexed = messages_.find(id); indexed != messages_.end()) {
      erase_value(indexed->second.message_segments, sequence);
    }
    auto tombstone = tombstones_.find(id);
    if (tombstone == tombstones_.end()) continue;
    erase_value(tombstone->second.message_segments, sequence);
    if (tombstone->second.message_segments.empty()) {
      // No copy of the message is left to resurrect: its removal record is
      // no longer needed.
      drop_reference(tombstone->second.removal, id);
      tombstones_.erase(tombstone);
    }
  }
}

std::vector<Spool::Relocation> Spool::plan_relocations(std::uint64_t sequence,
                                                       bool skip_busy_messages) {
  std::vector<Relocation> plan;
  auto segment = segments_.find(sequence);
  if (segment == segments_.end()) return plan;
  if (skip_busy_messages) {
    // Looked at before anything is read: this runs on the loop after every
    // completed write, and a segment being drained by deliveries has some
    // message with a write in flight most of the time; reading (and
    // checksumming) its records only to drop them stalled the loop, and
    // with it the recording of delivery outcomes.
    for (const auto& [id, count] : segment->second.holders) {
      auto indexed = messages_.find(id);
      if (indexed != messages_.end() && indexed->second.writes_in_flight > 0) return plan;
    }
  }
  for (const auto& [id, count] : segment->second.holders) {
    Relocation relocation;
    relocation.id = id;
    if (auto tombstone = tombstones_.find(id); tombstone != tombstones_.end()) {
      relocation.tombstone = true;
      relocation.records.push_back(join_record(record::encode_removal(id, write_key())));
      plan.push_back(std::move(relocation));
      continue;
    }
    auto indexed = messages_.find(id);
    if (indexed == messages_.end()) continue;
    const IndexedMessage& entry = indexed->second;
    relocation.copies_message = entry.message.segment == sequence;
    // A copied message record must be followed by its newest state, wherever
    // that is; a copied state alone is simply the newest state again.
    relocation.copies_state =
        entry.state && (relocation.copies_message || entry.state->segment == sequence);
    bool readable = true;
    const auto copy = [&](const RecordLocation& location) {
      std::string bytes;
      auto source = segments_.find(location.segment);
      if (source == segments_.end() || !source->second.file ||
          read_record_bytes(source->second.file->get(), location, bytes) ||
          !record::parse_record(bytes, options_.max_record_size, &checksum_key_)) {
        readable = false;
        return;
      }
      relocation.records.push_back(std::move(bytes));
    };
    if (relocation.copies_message) copy(entry.message);
    if (relocation.copies_state) copy(*entry.state);
    if (!readable) {
      spdlog::error("spool: message {}: a record in segment {} fails validation; not copied", id,
                    sequence);
      continue;
    }
    plan.push_back(std::move(relocation));
  }
  return plan;
}

void Spool::apply_relocation(const Relocation& relocation,
                             const std::vector<SegmentAppender::Appended>& appended) {
  for (const auto& result : appended) {
    if (result.error) return;  // the old records stay in use
  }
  for (const auto& result : appended) note_appended(result);
  if (relocation.tombstone) {
    auto tombstone = tombstones_.find(relocation.id);
    if (tombstone == tombstones_.end() || appended.empty()) return;
    drop_reference(tombstone->second.removal, relocation.id);
    tombstone->second.removal = appended.front().location;
    erase_value(tombstone->second.message_segments, appended.front().location.segment);
    if (tombstone->second.message_segments.empty()) {
      tombstones_.erase(tombstone);
    } else {
      add_reference(tombstone->second.removal, relocation.id);
    }
    return;
  }
  auto indexed = messages_.find(relocation.id);
  if (indexed == messages_.end()) return;
  IndexedMessage& entry = indexed->second;
  std::size_t next = 0;
  if (relocation.copies_message && next < appended.size()) {
    const RecordLocation& location = appended[next++].location;
    drop_reference(entry.message, relocation.id);
    entry.message = location;
    add_reference(location, relocation.id);
    add_unique(entry.message_segments, location.segment);
    segments_.at(location.segment).message_ids.push_back(relocation.id);
  }
  if (relocation.copies_state && next < appended.size() && entry.state) {
    const RecordLocation& location = appended[next++].location;
    drop_reference(*entry.state, relocation.id);
    entry.state = location;
    add_reference(location, relocation.id);
  }
}

// ---------------------------------------------------------------- reclaiming space

void Spool::collect_garbage() {
  if (!open_ || closed_ || segments_.size() < 2) return;
  const std::uint64_t newest = segments_.rbegin()->first;
  std::vector<std::uint64_t> to_delete;
  std::vector<std::uint64_t> to_compact;
  for (const auto& [sequence, info] : segments_) {
    if (sequence == newest || info.busy) continue;
    if (info.holders.empty()) {
      to_delete.push_back(sequence);
    } else if (static_cast<double>(info.live_bytes) <=
               options_.compaction_threshold * static_cast<double>(info.size)) {
      to_compact.push_back(sequence);
    }
  }
  for (std::uint64_t sequence : to_delete) delete_segment(sequence);
  for (std::uint64_t sequence : to_compact) compact(sequence);
}

void Spool::compact(std::uint64_t sequence) {
  std::vector<Relocation> plan = plan_relocations(sequence, /*skip_busy_messages=*/true);
  if (plan.empty()) return;
  std::uint64_t bytes = 0;
  for (const Relocation& relocation : plan) {
    for (const std::string& record : relocation.records) bytes += record.size();
  }
  if (!compaction_space_.check(bytes).enough) return;  // tried again at the next reclaim
  for (const Relocation& relocation : plan) {
    if (auto indexed = messages_.find(relocation.id); indexed != messages_.end()) {
      ++indexed->second.writes_in_flight;
    }
  }
  segments_.at(sequence).busy = true;
  auto shared_plan = std::make_shared<std::vector<Relocation>>(std::move(plan));
  auto results = std::make_shared<std::vector<std::vector<SegmentAppender::Appended>>>();
  std::weak_ptr<char> alive = lifetime_;
  submit(
      [this, shared_plan, results] {
        for (const Relocation& relocation : *shared_plan) {
          std::vector<SegmentAppender::Appended> appended;
          for (const std::string& bytes : relocation.records) {
            const std::string_view parts[] = {bytes};
            appended.push_back(appender_.append(parts, now()));
          }
          results->push_back(std::move(appended));
        }
      },
      [this, alive, sequence, shared_plan, results](std::error_code error) {
        if (alive.expired()) return;
        for (std::size_t i = 0; i < shared_plan->size(); ++i) {
          const Relocation& relocation = (*shared_plan)[i];
          if (auto indexed = messages_.find(relocation.id); indexed != messages_.end()) {
            --indexed->second.writes_in_flight;
          }
          if (!error && i < results->size()) apply_relocation(relocation, (*results)[i]);
        }
        if (auto segment = segments_.find(sequence); segment != segments_.end()) {
          segment->second.busy = false;
        }
        if (error) {
          spdlog::warn("spool: compacting segment {} failed: {}", sequence, error.message());
          return;
        }
        ++segments_compacted_;
        collect_garbage();
      });
}

void Spool::delete_segment(std::uint64_t sequence) {
  segments_.at(sequence).busy = true;
  const std::filesystem::path path = segments_directory_ / segment_file_name(sequence);
  auto unlink_error = std::make_shared<std::error_code>();
  std::weak_ptr<char> alive = lifetime_;
  submit(
      [this, path, unlink_error] {
        if (::unlink(path.c_str()) != 0 && errno != ENOENT) {
          *unlink_error = last_error();
          return;
        }
        directory_changed_ = true;  // the batch's commit fsyncs the folder
      },
      [this, alive, sequence, path, unlink_error](std::error_code error) {
        if (alive.expired()) return;
        if (!error) error = *unlink_error;
        if (error) {
          spdlog::warn("spool: deleting {} failed: {}", path.string(), error.message());
          if (auto segment = segments_.find(sequence); segment != segments_.end()) {
            segment->second.busy = false;
          }
          return;
        }
        ++segments_deleted_;
        forget_segment(sequence);
        collect_garbage();
      });
}

}  // namespace stokend::queue
