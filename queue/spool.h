// The spool: where accepted messages and their delivery state live on disk.
//
// Design
// ------
// Layout: one spool folder holding
//   segments/    append-only segment files "<16 hex digits>.seg" (segment_file.h)
//   quarantine/  files found damaged or foreign at start, kept for inspection
//
// Records (record_format.h) are versioned and self-validating (magic,
// version, type, lengths, BLAKE2b checksum). A message is written once, as
// one "message" record holding its envelope and data. Every later change of
// its delivery state appends a "state" record, a snapshot of all its
// recipients (status, attempts, next and last attempt, last reply); the last
// one wins. A finished or deleted message gets a "removal" record.
//
// Group commit. Acceptance must not cost one fsync per message: on a disk
// where one sync costs ~0.4 ms that would cap the daemon far below the
// thousands of messages per second it must take. All writes go through one
// writer thread (group_commit.h) that takes every request waiting, appends
// them all to the active segment with plain write(2), and then makes the
// whole batch durable with a single fdatasync before any of them is
// reported done. While it syncs, the next batch gathers. A shared
// append-only log was chosen over one file per message made durable
// together by syncfs(2): with per-message files each message still costs a
// file creation, an inode and a separately placed data block inside the
// journal commit, so a batch's sync grows with its size (measured on ext4:
// 0.15-1 ms per message even with 128 messages per syncfs), while appending
// to one file keeps the sync nearly flat (128 1 KB messages per fdatasync in
// 0.6-3.5 ms; one in 0.2-0.4 ms).
// syncfs also flushes unrelated files of the same file system and, before
// Linux 5.8, did not report write errors; fdatasync reports them for exactly
// the file written. The log also makes a restart fast: a scan reads a few
// large files sequentially instead of opening 100,000 small ones.
//
// Durability. A segment is created complete with its header record through
// durable::write_file (temporary file, fsync, rename, folder fsync), so a
// segment name always means a durable file. Appends are made durable by the
// batch's fdatasync, which also persists the file size they need. A request
// completes, on the loop thread, only after that sync: "stored" means on
// disk, and a 250 may be sent. If a write or sync fails, every request of
// the batch fails, and the appender moves on to a fresh segment (unless the
// write failed for space and was cut back cleanly: see "A full file system").
//
// Crash at any instant. Every record whose request completed survives. A
// batch being written may leave a torn record at the end of the newest
// segment; its requests had not completed, so nothing acknowledged is in
// it. At start the spool reads every segment in order, following record
// lengths from the header: a torn tail is cut off (with a log line).
//
// Damage loses only what is damaged. Where following lengths runs into
// bytes that do not verify (flipped bits, a lost block, a damaged header),
// the reader resynchronises: it scans those bytes for the next record that
// verifies and goes on from there (segment_file.h), so every intact record
// is applied, also those of a segment whose header is damaged (its sequence
// is then taken from its file name). A damaged state record leaves the
// message with its previous state; a damaged removal record brings the
// message back with its last state (so nothing is delivered twice); a
// damaged message record loses that message unless an intact copy exists.
// Resynchronising must not let a sender smuggle in a record: message data is
// chosen by whoever sent it, and bytes crafted to look like a record inside
// a message become visible to a scan once the record around them is
// damaged. So every record carries a checksum keyed with a secret
// made with the spool (spool_key.h: checksum.key beside segments/; record
// format versions 2 and 3), and a scan only takes records that verify with it.
// Spools from before the key get one at their next start; their unkeyed
// (version 1) records are still read where lengths lead, but never taken
// from a scan (as before the key, what follows damage in such a segment is
// then not applied). Whatever does not verify is never applied, and garbage
// never crashes the daemon. What the key cannot tell apart: this spool's own
// records sent back inside a message as raw 8-bit data (say, a quarantined
// segment mailed unencoded) would verify if the record around them were
// damaged; and a damaged removal of a message deleted by an administrator
// (no final state before it) brings that message back to be delivered. Both
// need damage in exactly that record, and neither loses anything.
//
// Forensics. A segment with damage in it (not a torn tail), or a foreign
// header, has every record the queue still needs copied into a fresh
// segment and is then moved into quarantine/, untouched, with a report
// beside it ("<file>.damage", damage_report.h, written durably) naming each
// damaged stretch: offset, length, and what can still be read there,
// unverified (the record type, the message id, sender and recipients), and
// what became of it. Each message lost is named in an error line in the
// log. `stokenctl queue damaged` lists the reports. A file without a valid
// name is quarantined as foreign.
//
// Delivered at least once, rarely twice. A delivery's outcome is appended
// the moment the queue hears it: for a message whose recipients are all
// delivered, its removal record (which alone says it is finished);
// otherwise a state record, the message being removed only after the state
// saying it is finished is durable. The request joins the batch being
// gathered, or the one being performed if its sync has not begun
// (group_commit.h), never a later one. A removed message's removal record is
// kept (see below) as long as any copy of its message record exists. A
// crash repeats only deliveries whose outcome was not yet durable: those
// that finished within about one commit before it, and never more than the
// queue's delivery slots (queue_manager.h).
//
// Space reclaim. Loop-side bookkeeping knows, for each segment, which
// records are still needed: a live message's newest message record and
// newest state record, and the removal record of a removed message while an
// older segment still holds that message's data (otherwise a restart would
// resurrect it). A sealed segment needing nothing is deleted (unlink, then a
// folder fsync before anything depends on it being gone). A sealed segment
// whose needed records fill at most compaction_threshold of it is compacted:
// those records are copied verbatim (they are self-contained) to the active
// segment, after which it needs nothing; not while the file system lacks
// room for the copies beside the active segment's headroom (see below), so
// that a full disk is not made fuller. Copies are written in the same
// request order as everything else, and a message with a write in flight is
// not copied, so a copy never overtakes a newer state. The active segment is
// never reclaimed.
//
// One process per spool. The daemon holds the spool lock (spool_lock.h)
// before open() and until it exits; a second daemon on the same folder stops
// before it reads anything here.
//
// A full file system. The active segment keeps segment_headroom
// (queue_defaults.h) allocated beyond its end, so that when the file system
// fills up the state and removal records of deliveries still fit: the queue
// goes on delivering, and sealed segments whose messages are all gone are
// deleted, which frees space. The session refuses new mail at MAIL while
// free space is under a reserve (free_space.h), so new messages rarely eat
// into that headroom.
//
// Start on a full file system. A daemon stopped while the file system was
// full must still start: it holds mail to deliver, and delivering it is
// what frees space. open() therefore never fails for lack of space. Reading,
// cutting torn tails and quarantining need no new space. If the new segment
// cannot be created (ENOSPC, EDQUOT), the newest segment, when it is a clean
// run of records (read to its end, its torn tail cut off), becomes the
// active one again and takes new records behind its last valid one; if it
// is not, nothing can be written until space returns, and the first write
// after that creates the next segment. Either way the appender keeps the
// active segment while space is short: a full one grows past segment_size
// rather than fail a write that fits, and a write that fails for space is
// cut back so the file stays clean and is written to again later. Writes
// that do not fit fail with ENOSPC or EDQUOT (the session then says 452
// 4.3.1, the queue retries state records after storage_retry_delay). What
// start writes outside the segments needs no new space either: the lock
// file exists after the first start and its PID is rewritten in place, and
// the token store (tokens.db, by default in the spool folder) keeps its -wal
// and -shm files (tokens/sqlite_token_store.h), so it opens without new
// space too. A spool that has no checksum key yet (spool_key.h: its first
// start, or the first start of a spool from before the key) and no room to
// make one writes unkeyed version 1 records until a start with free space
// makes the key; those records are read as such spools' records are.
//
// Contract: all public functions are called on the loop thread. store(),
// record_state() and remove() are asynchronous: `done` runs later on the
// loop thread, never inside the call, with an empty error once the change is
// durable. open() is synchronous and is called once, before anything else;
// it fails only when the spool cannot be used at all (folders missing and
// impossible to create, I/O errors), not for lack of space in it.
// load_data() reads synchronously (a pread of one record) and validates what
// it reads.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <deque>
#include <filesystem>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <system_error>
#include <unordered_map>
#include <unordered_set>
#include <vector>

#include "queue/damage_report.h"
#include "queue/event_loop.h"
#include "queue/free_space.h"
#include "queue/group_commit.h"
#include "queue/queue_defaults.h"
#include "queue/queued_message.h"
#include "queue/segment_file.h"

namespace stokend::queue {

struct SpoolOptions {
  std::filesystem::path directory;  // the spool folder (config spool_directory)
  std::size_t segment_size = defaults::segment_size;
  double compaction_threshold = defaults::compaction_threshold;
  std::size_t max_record_size = defaults::max_record_size;
  // Makes one file's appended data durable; empty means fdatasync(2). Tests
  // substitute one that counts calls.
  SegmentAppender::DataSync data_sync;
  // Wall clock for message ids and segment headers; empty means
  // system_clock. Called from the writer thread too, so it must be
  // thread-safe.
  std::function<TimePoint()> clock;
};

// A message found in the spool at start, with its last recorded state.
// message.data is null (load_data() reads it when needed).
struct RecoveredMessage {
  QueuedMessage message;
  MessageState state;
};

struct RecoveryReport {
  std::error_code error;  // the spool cannot be used (folders, first segment)
  std::string error_step;
  std::vector<RecoveredMessage> messages;
  std::size_t segments_read = 0;
  std::size_t records_read = 0;
  std::size_t torn_tails_discarded = 0;
  std::size_t files_quarantined = 0;
  // Every damaged record or stretch found (torn tails aside), with what
  // became of it; messages_lost counts the messages among them.
  std::vector<DamagedRecord> damaged;
  std::size_t messages_lost = 0;
};

class Spool {
 public:
  using Done = std::function<void(std::error_code)>;

  Spool(EventLoop& loop, SpoolOptions options);
  ~Spool();
  Spool(const Spool&) = delete;
  Spool& operator=(const Spool&) = delete;

  RecoveryReport open();

  // A fresh message id: unique among everything in the spool.
  std::string new_message_id();

  // Stores a new message (id from new_message_id(), data set).
  void store(const QueuedMessage& message, Done done);
  // Records a message's state; unknown ids fail with no_such_file_or_directory.
  void record_state(const std::string& id, const MessageState& state, Done done);
  // Removes a message for good.
  void remove(const std::string& id, Done done);

  struct Loaded {
    std::shared_ptr<const std::string> data;  // null on error
    std::error_code error;
  };
  Loaded load_data(const std::string& id) const;

  bool contains(const std::string& id) const { return messages_.contains(id); }

  // Requests submitted whose completion has not run yet (including the
  // spool's own space reclaim): zero means the spool is idle.
  std::size_t requests_in_flight() const { return requests_in_flight_; }

  // Finishes every pending write (their completions are still posted) and
  // stops the writer. Later requests fail with operation_canceled.
  void close();

  struct Statistics {
    std::size_t messages = 0;          // live messages
    std::size_t removed_but_kept = 0;  // removal records still needed
    std::size_t segments = 0;
    std::uint64_t bytes = 0;       // total size of the segments
    std::uint64_t live_bytes = 0;  // of which still needed
    std::size_t batches = 0;       // group commits so far
    std::size_t requests = 0;      // requests they carried
    std::size_t largest_batch = 0;
    std::size_t data_syncs = 0;       // fdatasync calls
    std::size_t directory_syncs = 0;  // folder fsyncs after deletions
    std::size_t segments_compacted = 0;
    std::size_t segments_deleted = 0;
  };
  Statistics statistics() const;

 private:
  struct IndexedMessage {
    RecordLocation message;
    std::optional<RecordLocation> state;
    std::vector<std::uint64_t> message_segments;  // every segment holding a copy of its data
    unsigned writes_in_flight = 0;
    // open() only: this message's entry in Recovery::messages (fits in the
    // padding after writes_in_flight, so it costs no memory).
    std::uint32_t recovered_index = 0;
  };
  // What open() has decoded so far, in replay order: one entry per message
  // record first seen, live until a removal record (or quarantine) ends it.
  // A vector indexed from IndexedMessage rather than a second hash table of
  // ids: one lookup per record instead of two, no second copy of each id.
  struct Recovery {
    std::deque<RecoveredMessage> messages;  // grows without moving what it holds
    std::vector<bool> live;
  };
  struct Tombstone {
    RecordLocation removal;
    std::vector<std::uint64_t> message_segments;  // still holding its data; never removal's
  };
  struct SegmentInfo {
    SharedFile file;
    std::uint64_t size = 0;
    std::uint64_t live_bytes = 0;
    std::unordered_map<std::string, std::uint32_t> holders;  // id -> needed records here
    std::vector<std::string> message_ids;                    // ids with a message record here
    bool busy = false;                                       // compaction or deletion in flight
  };
  // What copying one message's (or tombstone's) needed records out of a
  // segment writes.
  struct Relocation {
    std::string id;
    bool tombstone = false;
    bool copies_message = false;
    bool copies_state = false;
    std::vector<std::string> records;  // encoded records, in write order
  };
  struct RelocationResult {
    std::vector<SegmentAppender::Appended> appended;
  };

  // Index upkeep (loop thread).
  void add_reference(const RecordLocation& location, const std::string& id);
  void drop_reference(const RecordLocation& location, const std::string& id);
  SegmentInfo& segment_for(std::uint64_t sequence, const SharedFile& file);
  void note_appended(const SegmentAppender::Appended& appended);
  void make_tombstone(const std::string& id, const RecordLocation& removal);
  void forget_segment(std::uint64_t sequence);
  std::vector<Relocation> plan_relocations(std::uint64_t sequence, bool skip_busy_messages);
  void apply_relocation(const Relocation& relocation,
                        const std::vector<SegmentAppender::Appended>& appended);
  void collect_garbage();
  void compact(std::uint64_t sequence);
  void delete_segment(std::uint64_t sequence);

  // Start (open()).
  void apply_record(const record::RawRecord& raw, const RecordLocation& location,
                    Recovery& recovered, bool& undecodable);
  // moved_to, when given, receives the file's path in quarantine/.
  std::error_code quarantine_file(const std::filesystem::path& path, std::string_view reason,
                                  std::filesystem::path* moved_to = nullptr);
  // The file's path in quarantine/, or nothing when it was left in place.
  std::optional<std::filesystem::path> salvage_and_quarantine(std::uint64_t sequence,
                                                              std::string_view reason,
                                                              std::size_t& quarantined);
  // Decides, logs and reports what became of each damaged record of a
  // segment (moved_to: where the segment went, if it did).
  void settle_damage(std::vector<DamagedRecord> damaged,
                     const std::optional<std::filesystem::path>& moved_to,
                     const std::unordered_set<std::string>& removed, RecoveryReport& report);

  // Appends a record about a live message (a state or its removal) and,
  // once it is durable and the message still indexed, lets `applied` update
  // the index with where it landed. Unknown ids and a closed spool fail
  // through `done` like the public requests.
  using Applied = std::function<void(IndexedMessage& indexed, const RecordLocation& location)>;
  void append_message_record(const std::string& id, record::EncodedRecord record, Done done,
                             Applied applied);

  // Hands a request to the writer, counting it until its completion runs.
  void submit(GroupCommitter::Perform perform, GroupCommitter::Complete complete);

  // Writer thread.
  std::error_code commit_batch();

  void post_done(Done done, std::error_code error);
  TimePoint now() const;

  EventLoop& loop_;
  SpoolOptions options_;
  std::filesystem::path segments_directory_;
  std::filesystem::path quarantine_directory_;

  // Loop thread only.
  // Compaction copies records forward only when they fit beside the
  // headroom (a copy on a full file system would eat the space that state
  // records need).
  FreeSpaceMonitor compaction_space_;
  std::unordered_map<std::string, IndexedMessage> messages_;
  std::unordered_map<std::string, Tombstone> tombstones_;
  std::unordered_set<std::string> stores_in_flight_;
  std::map<std::uint64_t, SegmentInfo> segments_;
  std::uint64_t id_counter_ = 0;
  std::size_t requests_in_flight_ = 0;
  std::size_t segments_compacted_ = 0;
  std::size_t segments_deleted_ = 0;
  bool open_ = false;
  bool closed_ = false;

  // Set by open() before the writer starts; read-only afterwards.
  record::ChecksumKey checksum_key_;
  bool keyed_ = true;  // false: no key could be made (full file system), records are version 1
  const record::ChecksumKey* write_key() const { return keyed_ ? &checksum_key_ : nullptr; }

  // Writer thread only (and open(), before the writer starts).
  SegmentAppender appender_;
  bool directory_changed_ = false;
  std::atomic<std::size_t> data_syncs_{0};
  std::atomic<std::size_t> directory_syncs_{0};

  // Completions posted to the loop check this is still alive.
  std::shared_ptr<char> lifetime_ = std::make_shared<char>();
  // Last: stopped (and joined) first on destruction.
  std::unique_ptr<GroupCommitter> committer_;
};

}  // namespace stokend::queue
