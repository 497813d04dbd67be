// The spool's on-disk record format: versioned, self-validating records.
//
// Every record, whatever it holds, is framed the same way (integers are
// little-endian):
//
//   offset  size  field
//   0       4     magic "STKQ"
//   4       1     format version (1, 2 or 3)
//   5       1     record type (RecordType)
//   6       2     reserved, zero
//   8       4     payload length N
//   12      N     payload
//   12+N    16    the checksum: for version 3, keyed BLAKE2b-128
//                 (crypto_generichash) of the CRC-32C of bytes 0 .. 12+N
//                 (u32) followed by bytes 0 .. 12; for versions 1 and 2,
//                 BLAKE2b-128 of bytes 0 .. 12+N
//
// A record is valid only if its magic, version, type, reserved bytes, length
// and checksum all agree; a torn or corrupted record is therefore detected
// rather than misread.
//
// Versions 2 and 3 key the checksum with the spool's secret key
// (ChecksumKey, queue/spool_key.h); version 1, written before spools had a
// key, does not. The payloads are the same. Version 3 is what is written:
// the CRC-32C (common/crc32c.h, in hardware) detects a torn or corrupted
// record as version 2's hash of everything did, at a few microseconds for a
// large message instead of a fraction of a millisecond, and the keyed hash
// over that CRC and the header keeps the property below, since making a
// verifying record still takes the key. Version 2 records are still read.
// The key is what makes resynchronising after damage safe: message data is
// chosen by whoever sent the message, and with an unkeyed checksum a
// sender could embed bytes that verify as a record; without the key
// nobody outside the spool can make a keyed record that verifies.
// Version 1 records are still read, but only where record lengths lead to
// them, never when found by scanning (segment_file.h). Payload fields:
// strings are a u32 length and bytes, times are i64 milliseconds since the
// Unix epoch.
//
//   segment header: u64 sequence, time created
//   message:        string id, time arrival, u8 flags (1 chat, 2 bounce,
//                   4 smtputf8, 8 dsn, 16 authenticated sender), string
//                   sender, string envelope id, u32 recipient count,
//                   strings recipients,
//                   [only with flag 8: the DSN requests (RFC 3461): u8 RET
//                   (DsnReturn), per recipient: u8 NOTIFY bits, string
//                   ORCPT type, string ORCPT address],
//                   u64 data length, data (the rest of the payload)
//   state:          string id, u8 flags (1 held, 2 delay warning sent),
//                   u32 count, per recipient: u8 status, u32 attempts,
//                   time next attempt, time last attempt, u8 reporting
//                   (1 failure reported, 2 success reported, 4 and 8: the
//                   Handoff), string last reply
//
// Compatibility: flags 8 and 16 and the reporting bits above 1 came later.
// A message without flag 16 is not given its sender's tokens (the fast
// lane), so mail queued before the flag existed goes by MX, the safe side.
// A record without them is what the first writer wrote (no DSN requests,
// handoff "relayed"), so every existing spool still decodes; the writer
// sets flag 8 only for a message that has DSN requests, and writes the same
// bytes as before for every other message.
//   removal:        string id
//
// Contract: encoding never fails; decoding never throws and returns nothing
// for any payload that is not exactly one well-formed value.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "queue/queued_message.h"

namespace stokend::queue::record {

inline constexpr std::string_view magic = "STKQ";
inline constexpr std::uint8_t unkeyed_format_version = 1;
inline constexpr std::uint8_t hashed_format_version = 2;  // keyed hash of everything
inline constexpr std::uint8_t format_version = 3;         // keyed hash of a CRC-32C
inline constexpr std::size_t header_size = 12;
inline constexpr std::size_t checksum_size = 16;
inline constexpr std::size_t framing_size = header_size + checksum_size;

// The spool's secret key for version 2 and 3 checksums.
struct ChecksumKey {
  static constexpr std::size_t size = 32;
  std::array<unsigned char, size> bytes{};
};

enum class RecordType : std::uint8_t {
  segment_header = 0,  // first record of every segment file
  message = 1,         // a message: envelope and data
  state = 2,           // a snapshot of a message's delivery state; the last one counts
  removal = 3,         // the message is finished or deleted
};

// An encoded record in three pieces, so that a message's data is written
// straight from the caller's buffer instead of being copied.
struct EncodedRecord {
  std::string head;                         // framing header and the payload before the data
  std::shared_ptr<const std::string> body;  // message data; null for other records
  std::string tail;                         // the checksum

  std::size_t size() const { return head.size() + (body ? body->size() : 0) + tail.size(); }
  std::array<std::string_view, 3> parts() const& {
    return {head, body ? std::string_view(*body) : std::string_view(), tail};
  }
  // Views into a temporary would dangle.
  std::array<std::string_view, 3> parts() const&& = delete;
};

// With a key the record is written as version 3; without one (null) as
// version 1, the format of spools from before the key (kept for tests of
// reading them).
EncodedRecord encode_segment_header(std::uint64_t sequence, TimePoint created,
                                    const ChecksumKey* key = nullptr);
// message.data must be set (an empty message is written as empty data).
EncodedRecord encode_message(const QueuedMessage& message, const ChecksumKey* key = nullptr);
EncodedRecord encode_state(std::string_view id, const MessageState& state,
                           const ChecksumKey* key = nullptr);
EncodedRecord encode_removal(std::string_view id, const ChecksumKey* key = nullptr);

// One valid record found at the start of some bytes.
struct RawRecord {
  RecordType type{};
  std::string_view payload;
  std::size_t size = 0;  // framing included: the offset of the next record
  bool keyed = false;    // version 2 or 3: verified with the spool's key
};

// Parses and validates the record at the start of bytes. Nothing when the
// bytes are not a whole valid record (torn, corrupt, or not a record at all).
// max_record_size bounds the length field, so garbage cannot ask for gigabytes.
// A version 2 or 3 record verifies only with the key it was written with; without
// a key (null) only version 1 records do.
std::optional<RawRecord> parse_record(std::string_view bytes, std::size_t max_record_size,
                                      const ChecksumKey* key = nullptr);

// From the framing header alone: the size a record at the start of bytes
// has if its checksum verifies (what checking it costs), or nothing when the
// header already rules it out (parse_record's checks but the checksum).
std::optional<std::size_t> plausible_record_size(std::string_view bytes,
                                                 std::size_t max_record_size,
                                                 const ChecksumKey* key);

// The record size the framing header at the start of bytes (at least
// header_size of them) claims, whether or not anything else about it holds.
std::uint64_t claimed_record_size(std::string_view bytes);

// The offset of the next occurrence of the magic at or after from, or
// bytes.size(): where to try again after damage.
std::size_t find_magic(std::string_view bytes, std::size_t from);

struct SegmentHeader {
  std::uint64_t sequence = 0;
  TimePoint created{};
};

std::optional<SegmentHeader> decode_segment_header(std::string_view payload);
// with_data false skips copying the data (a spool scan needs only its size);
// the returned message's data is then null.
std::optional<QueuedMessage> decode_message(std::string_view payload, bool with_data);
struct DecodedState {
  std::string id;
  MessageState state;
};
std::optional<DecodedState> decode_state(std::string_view payload);
std::optional<std::string> decode_removal(std::string_view payload);

// What can still be read, unverified, from bytes where a record should start
// but none verifies: the record type, and the message id, sender and
// recipients as far as they are intact. Only for reporting damage; never
// applied. Never throws, whatever the bytes.
struct DamagedRecordContents {
  std::optional<RecordType> type;
  std::string id;  // empty when unreadable
  std::optional<std::string> sender;
  std::vector<std::string> recipients;
  bool all_recipients_read = false;
};
DamagedRecordContents read_damaged_record(std::string_view bytes);

}  // namespace stokend::queue::record
