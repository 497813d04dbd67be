// The spool: see spool.h for the design.
#include "queue/spool.h"

#include <fcntl.h>
#include <sodium.h>
#include <spdlog/spdlog.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>

#include "queue/durable_file.h"
#include "queue/record_format.h"

namespace stokend::queue {
namespace {

std::error_code last_error() { return {errno, std::system_category()}; }

void erase_value(std::vector<std::uint64_t>& values, std::uint64_t value) {
  values.erase(std::remove(values.begin(), values.end(), value), values.end());
}

void add_unique(std::vector<std::uint64_t>& values, std::uint64_t value) {
  if (std::find(values.begin(), values.end(), value) == values.end()) values.push_back(value);
}

std::string join_record(const record::EncodedRecord& encoded) {
  std::string bytes;
  bytes.reserve(encoded.size());
  for (std::string_view part : encoded.parts()) bytes.append(part);
  return bytes;
}

// The state a message has before any state record: everyone pending, due at
// once.
MessageState initial_state(const QueuedMessage& message) {
  MessageState state;
  state.recipients.resize(message.envelope.recipients.size());
  for (RecipientState& recipient : state.recipients) recipient.next_attempt = message.arrival;
  return state;
}

}  // namespace

Spool::Spool(EventLoop& loop, SpoolOptions options)
    : loop_(loop),
      options_(std::move(options)),
      segments_directory_(options_.directory / "segments"),
      quarantine_directory_(options_.directory / "quarantine"),
      appender_(segments_directory_, options_.segment_size, [this](int descriptor) {
        ++data_syncs_;
        return options_.data_sync ? options_.data_sync(descriptor) : durable::sync_data(descriptor);
      }) {
  // Picks libsodium's fastest BLAKE2b; safe to call more than once.
  if (sodium_init() < 0) spdlog::warn("spool: libsodium failed to initialise");
  id_counter_ = randombytes_uniform(1u << 28);
}

Spool::~Spool() { close(); }

TimePoint Spool::now() const {
  return options_.clock ? options_.clock() : std::chrono::system_clock::now();
}

void Spool::close() {
  if (committer_) committer_->stop();
  closed_ = true;
}

void Spool::post_done(Done done, std::error_code error) {
  loop_.post([done = std::move(done), error] {
    if (done) done(error);
  });
}

// ---------------------------------------------------------------- start

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

  // Replay every segment in order.
  std::unordered_map<std::string, RecoveredMessage> recovered;
  std::vector<std::pair<std::uint64_t, std::string>> damaged;
  for (std::uint64_t sequence : sequences) {
    const std::filesystem::path path = segments_directory_ / segment_file_name(sequence);
    bool undecodable = false;
    const SegmentReadReport read = read_segment(
        path, options_.max_record_size, [&](const record::RawRecord& raw, std::uint64_t offset) {
          ++report.records_read;
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

    std::string problem;
    if (!read.header) {
      problem = "no valid segment header";
    } else if (read.header->sequence != sequence) {
      problem = "header names segment " + std::to_string(read.header->sequence);
    } else if (read.damaged && !read.torn_tail()) {
      problem = std::to_string(read.file_size - read.valid_end) + " damaged bytes from offset " +
                std::to_string(read.valid_end) + ", " + std::to_string(read.records_after_damage) +
                " records behind them not applied";
    } else if (undecodable) {
      problem = "records with valid checksums but unreadable contents";
    }
    if (!file->valid()) problem = "cannot reopen: " + last_error().message();
    if (!problem.empty()) {
      damaged.emplace_back(sequence, std::move(problem));
      continue;
    }
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
      }
      ++report.torn_tails_discarded;
    }
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
    return fail(error, "create segment " + segment_file_name(next_sequence));
  }
  {
    const std::filesystem::path path = segments_directory_ / segment_file_name(next_sequence);
    auto file = std::make_shared<UniqueFd>(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
    if (!file->valid()) return fail(last_error(), "open " + path.string());
    SegmentInfo& info = segment_for(next_sequence, file);
    struct stat status {};
    if (::fstat(file->get(), &status) == 0) info.size = static_cast<std::uint64_t>(status.st_size);
  }

  for (auto& [sequence, reason] : damaged) {
    salvage_and_quarantine(sequence, reason, report.files_quarantined);
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
    recovered.erase(it->first);
    it = messages_.erase(it);
  }

  report.messages.reserve(messages_.size());
  for (auto& [id, indexed] : messages_) {
    auto found = recovered.find(id);
    if (found != recovered.end()) report.messages.push_back(std::move(found->second));
  }
  std::sort(report.messages.begin(), report.messages.end(),
            [](const RecoveredMessage& a, const RecoveredMessage& b) {
              return a.message.arrival < b.message.arrival;
            });

  committer_ = std::make_unique<GroupCommitter>(loop_, [this] { return commit_batch(); });
  open_ = true;
  collect_garbage();  // segments emptied before the restart
  spdlog::info(
      "spool: {} messages in {} segments ({} records); {} torn tails cut, {} files "
      "quarantined",
      report.messages.size(), report.segments_read, report.records_read,
      report.torn_tails_discarded, report.files_quarantined);
  return report;
}

void Spool::apply_record(const record::RawRecord& raw, const RecordLocation& location,
                         std::unordered_map<std::string, RecoveredMessage>& recovered,
                         bool& undecodable) {
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
        std::string id = message->id;
        MessageState state = initial_state(*message);
        recovered.emplace(std::move(id), RecoveredMessage{std::move(*message), std::move(state)});
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
      RecoveredMessage& entry = recovered.at(decoded->id);
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
      messages_.erase(indexed);
      recovered.erase(*id);
      return;
    }
    case record::RecordType::segment_header:
      return;
  }
}

std::error_code Spool::quarantine_file(const std::filesystem::path& path, std::string_view reason) {
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
  return error;
}

void Spool::salvage_and_quarantine(std::uint64_t sequence, std::string_view reason,
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
    return;
  }
  if (!quarantine_file(path, std::string(reason) + "; " + std::to_string(relocations.size()) +
                                 " entries copied out first")) {
    ++quarantined;
    forget_segment(sequence);
  }
}

// ---------------------------------------------------------------- ids

std::string Spool::new_message_id() {
  for (;;) {
    const auto microseconds =
        std::chrono::duration_cast<std::chrono::microseconds>(now().time_since_epoch()).count();
    char text[32];
    std::snprintf(text, sizeof text, "%013llx%07llx",
                  static_cast<unsigned long long>(microseconds) & 0xfffffffffffffULL,
                  static_cast<unsigned long long>(id_counter_++ & 0xfffffffULL));
    std::string id(text);
    if (!messages_.contains(id) && !tombstones_.contains(id) && !stores_in_flight_.contains(id)) {
      return id;
    }
  }
}

// ---------------------------------------------------------------- requests

void Spool::store(const QueuedMessage& message, Done done) {
  if (!open_ || closed_ || !message.data || message.id.empty() ||
      message.envelope.recipients.empty() || messages_.contains(message.id) ||
      stores_in_flight_.contains(message.id)) {
    post_done(std::move(done), std::make_error_code(closed_ ? std::errc::operation_canceled
                                                            : std::errc::invalid_argument));
    return;
  }
  auto encoded = std::make_shared<record::EncodedRecord>(record::encode_message(message));
  auto result = std::make_shared<SegmentAppender::Appended>();
  stores_in_flight_.insert(message.id);
  std::weak_ptr<char> alive = lifetime_;
  submit(
      [this, encoded, result] {
        const auto parts = encoded->parts();
        *result = appender_.append(parts, now());
      },
      [this, alive, id = message.id, result, done = std::move(done)](std::error_code error) {
        if (alive.expired()) return;
        stores_in_flight_.erase(id);
        if (!result->error && result->file) {
          // The record is in the file even if the sync failed: index it, and
          // on failure retract it at once, so that a restart does not bring
          // back a message whose sender was told it failed.
          note_appended(*result);
          IndexedMessage& indexed = messages_[id];
          indexed.message = result->location;
          indexed.message_segments = {result->location.segment};
          segments_.at(result->location.segment).message_ids.push_back(id);
          add_reference(result->location, id);
          if (error) remove(id, nullptr);
        }
        if (!error) error = result->error;
        if (done) done(error);
        collect_garbage();
      });
}

void Spool::record_state(const std::string& id, const MessageState& state, Done done) {
  auto indexed = messages_.find(id);
  if (closed_ || indexed == messages_.end()) {
    post_done(std::move(done),
              std::make_error_code(closed_ ? std::errc::operation_canceled
                                           : std::errc::no_such_file_or_directory));
    return;
  }
  ++indexed->second.writes_in_flight;
  auto encoded = std::make_shared<record::EncodedRecord>(record::encode_state(id, state));
  auto result = std::make_shared<SegmentAppender::Appended>();
  std::weak_ptr<char> alive = lifetime_;
  submit(
      [this, encoded, result] {
        const auto parts = encoded->parts();
        *result = appender_.append(parts, now());
      },
      [this, alive, id, result, done = std::move(done)](std::error_code error) {
        if (alive.expired()) return;
        if (!error) error = result->error;
        auto indexed = messages_.find(id);
        if (indexed != messages_.end()) {
          --indexed->second.writes_in_flight;
          if (!error) {
            note_appended(*result);
            add_reference(result->location, id);
            if (indexed->second.state) drop_reference(*indexed->second.state, id);
            indexed->second.state = result->location;
          }
        }
        if (done) done(error);
        collect_garbage();
      });
}

void Spool::remove(const std::string& id, Done done) {
  auto indexed = messages_.find(id);
  if (closed_ || indexed == messages_.end()) {
    post_done(std::move(done),
              std::make_error_code(closed_ ? std::errc::operation_canceled
                                           : std::errc::no_such_file_or_directory));
    return;
  }
  ++indexed->second.writes_in_flight;
  auto encoded = std::make_shared<record::EncodedRecord>(record::encode_removal(id));
  auto result = std::make_shared<SegmentAppender::Appended>();
  std::weak_ptr<char> alive = lifetime_;
  submit(
      [this, encoded, result] {
        const auto parts = encoded->parts();
        *result = appender_.append(parts, now());
      },
      [this, alive, id, result, done = std::move(done)](std::error_code error) {
        if (alive.expired()) return;
        if (!error) error = result->error;
        auto indexed = messages_.find(id);
        if (indexed != messages_.end()) {
          --indexed->second.writes_in_flight;
          if (!error) {
            note_appended(*result);
            make_tombstone(id, result->location);
          }
        }
        if (done) done(error);
        collect_garbage();
      });
}

Spool::Loaded Spool::load_data(const std::string& id) const {
  Loaded loaded;
  auto indexed = messages_.find(id);
  if (indexed == messages_.end()) {
    loaded.error = std::make_error_code(std::errc::no_such_file_or_directory);
    return loaded;
  }
  const RecordLocation& location = indexed->second.message;
  auto segment = segments_.find(location.segment);
  if (segment == segments_.end() || !segment->second.file) {
    loaded.error = std::make_error_code(std::errc::io_error);
    return loaded;
  }
  std::string bytes;
  if (auto error = read_record_bytes(segment->second.file->get(), location, bytes)) {
    loaded.error = error;
    return loaded;
  }
  auto raw = record::parse_record(bytes, options_.max_record_size);
  std::optional<QueuedMessage> message;
  if (raw && raw->type == record::RecordType::message) {
    message = record::decode_message(raw->payload, /*with_data=*/true);
  }
  if (!message || message->id != id) {
    spdlog::error("spool: message {} in segment {} at offset {} fails validation", id,
                  location.segment, location.offset);
    loaded.error = std::make_error_code(std::errc::illegal_byte_sequence);
    return loaded;
  }
  loaded.data = std::move(message->data);
  return loaded;
}

// ---------------------------------------------------------------- writer

void Spool::submit(GroupCommitter::Perform perform, GroupCommitter::Complete complete) {
  ++requests_in_flight_;
  std::weak_ptr<char> alive = lifetime_;
  committer_->submit(std::move(perform),
                     [this, alive, complete = std::move(complete)](std::error_code error) {
                       if (!alive.expired()) --requests_in_flight_;
                       complete(error);
                     });
}

std::error_code Spool::commit_batch() {
  std::error_code error = appender_.sync();
  if (directory_changed_) {
    directory_changed_ = false;
    ++directory_syncs_;
    if (auto folder_error = durable::sync_directory(segments_directory_); !error) {
      error = folder_error;
    }
  }
  return error;
}

// ---------------------------------------------------------------- bookkeeping

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
  for (const auto& [id, count] : segment->second.holders) {
    Relocation relocation;
    relocation.id = id;
    if (auto tombstone = tombstones_.find(id); tombstone != tombstones_.end()) {
      relocation.tombstone = true;
      relocation.records.push_back(join_record(record::encode_removal(id)));
      plan.push_back(std::move(relocation));
      continue;
    }
    auto indexed = messages_.find(id);
    if (indexed == messages_.end()) continue;
    if (skip_busy_messages && indexed->second.writes_in_flight > 0) {
      plan.clear();  // try the whole segment again once its writes are done
      return plan;
    }
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
          !record::parse_record(bytes, options_.max_record_size)) {
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

Spool::Statistics Spool::statistics() const {
  Statistics statistics;
  statistics.messages = messages_.size();
  statistics.removed_but_kept = tombstones_.size();
  statistics.segments = segments_.size();
  for (const auto& [sequence, info] : segments_) {
    statistics.bytes += info.size;
    statistics.live_bytes += info.live_bytes;
  }
  if (committer_) {
    const auto group = committer_->statistics();
    statistics.batches = group.batches;
    statistics.requests = group.jobs;
    statistics.largest_batch = group.largest_batch;
  }
  statistics.data_syncs = data_syncs_;
  statistics.directory_syncs = directory_syncs_;
  statistics.segments_compacted = segments_compacted_;
  statistics.segments_deleted = segments_deleted_;
  return statistics;
}

}  // namespace stokend::queue
