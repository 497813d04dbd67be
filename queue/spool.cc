// The spool: requests and the writer side. See spool.h for the design;
// start-up is in spool_recovery.cc, space reclaim in spool_reclaim.cc.
#include "queue/spool.h"

#include <sodium.h>
#include <spdlog/spdlog.h>

#include <cstdio>

#include "common/durable_file.h"
#include "queue/queue_metrics.h"
#include "queue/record_format.h"
#include "queue/spool_forensics.h"
#include "queue/spool_helpers.h"

namespace stokend::queue {

using namespace spool_helpers;

Spool::Spool(EventLoop& loop, SpoolOptions options)
    : loop_(loop),
      options_(std::move(options)),
      segments_directory_(options_.directory / "segments"),
      quarantine_directory_(options_.directory / quarantine_folder_name),
      compaction_space_(options_.directory, defaults::segment_headroom,
                        defaults::free_space_refresh, FreeSpaceMonitor::Logging::quiet),
      appender_(
          segments_directory_, options_.segment_size,
          [this](int descriptor) {
            ++data_syncs_;
            const auto started = std::chrono::steady_clock::now();
            const std::error_code error = options_.data_sync ? options_.data_sync(descriptor)
                                                             : durable::sync_data(descriptor);
            queue_metrics().spool_fsync_seconds.observe(
                std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count());
            return error;
          },
          &checksum_key_) {
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
  auto encoded =
      std::make_shared<record::EncodedRecord>(record::encode_message(message, write_key()));
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
  append_message_record(id, record::encode_state(id, state, write_key()), std::move(done),
                        [this, id](IndexedMessage& indexed, const RecordLocation& location) {
                          add_reference(location, id);
                          if (indexed.state) drop_reference(*indexed.state, id);
                          indexed.state = location;
                        });
}

void Spool::remove(const std::string& id, Done done) {
  append_message_record(id, record::encode_removal(id, write_key()), std::move(done),
                        [this, id](IndexedMessage&, const RecordLocation& location) {
                          make_tombstone(id, location);
                        });
}

void Spool::append_message_record(const std::string& id, record::EncodedRecord record, Done done,
                                  Applied applied) {
  auto indexed = messages_.find(id);
  if (closed_ || indexed == messages_.end()) {
    post_done(std::move(done),
              std::make_error_code(closed_ ? std::errc::operation_canceled
                                           : std::errc::no_such_file_or_directory));
    return;
  }
  // Counted until the record is durable, so that compaction does not copy
  // the message's records past this newer one (spool.h, space reclaim).
  ++indexed->second.writes_in_flight;
  auto encoded = std::make_shared<record::EncodedRecord>(std::move(record));
  auto result = std::make_shared<SegmentAppender::Appended>();
  std::weak_ptr<char> alive = lifetime_;
  submit(
      [this, encoded, result] {
        const auto parts = encoded->parts();
        *result = appender_.append(parts, now());
      },
      [this, alive, id, result, done = std::move(done),
       applied = std::move(applied)](std::error_code error) {
        if (alive.expired()) return;
        if (!error) error = result->error;
        auto indexed = messages_.find(id);
        if (indexed != messages_.end()) {
          --indexed->second.writes_in_flight;
          if (!error) {
            note_appended(*result);
            applied(indexed->second, result->location);
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
  auto raw = record::parse_record(bytes, options_.max_record_size, &checksum_key_);
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
