// Every default of the queue, in one place.
//
// RetryPolicy, SpoolOptions and QueueSettings start from these values; the
// daemon's configuration overrides them. Nothing else in queue/ hard-codes a
// limit, an interval or a size.
#pragma once

#include <chrono>
#include <cstddef>

namespace stokend::queue::defaults {

using namespace std::chrono_literals;

// Retry schedule, in the spirit of Postfix (minimal_backoff_time 300s,
// maximal_backoff_time 4000s, maximal_queue_lifetime 5d, delay_warning_time).
inline constexpr std::chrono::seconds first_retry = 5min;  // after the first failed attempt
inline constexpr double backoff_factor = 2.0;              // each further interval doubles
inline constexpr std::chrono::seconds max_retry_interval = 1h;
// Each interval is shortened by a random fraction of up to this much, so that
// messages deferred together (a destination down) do not retry in lockstep.
inline constexpr double retry_jitter = 0.2;
inline constexpr std::chrono::seconds message_lifetime = 5 * 24h;  // then bounce
inline constexpr std::chrono::seconds delay_warning_after = 4h;    // 0s: never warn

// Deliveries running at once (all destinations together).
inline constexpr std::size_t max_concurrent_deliveries = 100;

// Message data kept in memory for messages waiting for a delivery slot, so
// that a burst does not read each message back from the spool (and check
// its checksum) moments after writing it. Beyond this, waiting messages
// drop their data and read it back when their turn comes.
inline constexpr std::size_t waiting_data_budget = 64 * 1024 * 1024;

// RET=FULL (RFC 3461 §4.3) returns a message whole in its bounce up to this
// size, and larger ones as their headers, like Postfix's bounce_size_limit.
inline constexpr std::size_t returned_message_limit = 50000;

// Before retrying a failed spool write of a state change or a bounce.
inline constexpr std::chrono::seconds storage_retry_delay = 30s;

// Spool segments: a new one is started once the active one reaches this size.
// The most message-index entries the start-up scan reserves ahead (from
// the spool's size): 2,000,000 buckets are 16 MB.
inline constexpr std::size_t scan_index_reserve = 2'000'000;
inline constexpr std::size_t segment_size = 16 * 1024 * 1024;
// The active segment keeps this much disk space allocated beyond its end
// (fallocate, the file size unchanged), topped up whenever half of it is
// used: when the file system fills up, state and removal records (some 100
// bytes each) still fit, so deliveries are recorded and free space.
inline constexpr std::size_t segment_headroom = 256 * 1024;
// A sealed segment whose records still in use fill at most this fraction of
// it is compacted: those records are copied forward and the segment deleted.
inline constexpr double compaction_threshold = 0.25;
// No record is larger than this; a length field above it marks garbage.
inline constexpr std::size_t max_record_size = 512 * 1024 * 1024;
// Resynchronising after damage checks candidate records (a checksum over
// each one's claimed length) for at most this many times a segment's size,
// so that data full of fake record starts cannot stall a start.
inline constexpr std::size_t resync_scan_budget_factor = 16;

// New mail is refused (452 4.3.1) while the spool's file system has less
// than this free (queue/free_space.h). Postfix refuses below one and a half
// times its message_size_limit, so that a message of the largest size still
// fits with a margin; the floor keeps room for the state and removal records
// of what is queued (some 100 bytes each: 16M serves over 100,000 messages)
// when the largest message is small.
inline constexpr std::size_t min_free_space_floor = 16 * 1024 * 1024;
constexpr std::size_t min_free_space(std::size_t max_message_size) {
  const std::size_t margin = max_message_size + max_message_size / 2;
  return margin > min_free_space_floor ? margin : min_free_space_floor;
}
// How long a free-space measurement is believed: a MAIL command costs no
// system call most of the time, and space coming back is noticed this soon.
inline constexpr std::chrono::milliseconds free_space_refresh = 1s;

}  // namespace stokend::queue::defaults
