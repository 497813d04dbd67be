// Encoding and validating spool records (see record_format.h for the layout).
#include "queue/record_format.h"

#include <sodium.h>

#include <chrono>

#include "common/crc32c.h"

namespace stokend::queue::record {
namespace {

constexpr std::uint8_t message_flag_chat = 1;
constexpr std::uint8_t message_flag_bounce = 2;
constexpr std::uint8_t message_flag_smtputf8 = 4;
constexpr std::uint8_t message_flag_dsn = 8;
constexpr std::uint8_t message_flag_authenticated_sender = 16;
constexpr std::uint8_t message_flags = message_flag_chat | message_flag_bounce |
                                       message_flag_smtputf8 | message_flag_dsn |
                                       message_flag_authenticated_sender;
constexpr std::uint8_t reporting_failure = 1;
constexpr std::uint8_t reporting_success = 2;
constexpr int reporting_handoff_shift = 2;
constexpr std::uint8_t reporting_bits = 0x0f;
constexpr std::uint8_t highest_handoff = static_cast<std::uint8_t>(Handoff::relayed_with_dsn);
constexpr std::uint8_t highest_dsn_return = static_cast<std::uint8_t>(DsnReturn::headers);
constexpr std::uint8_t state_flag_held = 1;
constexpr std::uint8_t state_flag_delay_warning_sent = 2;
constexpr std::uint8_t highest_status = static_cast<std::uint8_t>(RecipientStatus::expired);

// Appends little-endian fields to a byte string.
class FieldWriter {
 public:
  explicit FieldWriter(std::string& output) : output_(output) {}
  void u8(std::uint8_t value) { output_.push_back(static_cast<char>(value)); }
  void u16(std::uint16_t value) { little_endian(value, 2); }
  void u32(std::uint32_t value) { little_endian(value, 4); }
  void u64(std::uint64_t value) { little_endian(value, 8); }
  void time(TimePoint when) {
    const auto milliseconds =
        std::chrono::duration_cast<std::chrono::milliseconds>(when.time_since_epoch()).count();
    u64(static_cast<std::uint64_t>(static_cast<std::int64_t>(milliseconds)));
  }
  void string(std::string_view text) {
    u32(static_cast<std::uint32_t>(text.size()));
    output_.append(text);
  }

 private:
  void little_endian(std::uint64_t value, int bytes) {
    for (int i = 0; i < bytes; ++i) output_.push_back(static_cast<char>((value >> (8 * i)) & 0xff));
  }
  std::string& output_;
};

// Reads little-endian fields; any read past the end makes the reader bad,
// and every later read returns zero values, so decoders check once at the end.
class FieldReader {
 public:
  explicit FieldReader(std::string_view input) : input_(input) {}
  std::uint8_t u8() { return static_cast<std::uint8_t>(little_endian(1)); }
  std::uint16_t u16() { return static_cast<std::uint16_t>(little_endian(2)); }
  std::uint32_t u32() { return static_cast<std::uint32_t>(little_endian(4)); }
  std::uint64_t u64() { return little_endian(8); }
  // A time out of TimePoint's range (about +-292 years in nanoseconds) makes
  // the reader bad instead of overflowing: read_damaged_record() reads
  // bytes that did not verify.
  TimePoint time() {
    constexpr auto limit =
        std::chrono::duration_cast<std::chrono::milliseconds>(TimePoint::duration::max());
    const auto milliseconds = static_cast<std::int64_t>(u64());
    if (milliseconds > limit.count() || milliseconds < -limit.count()) {
      good_ = false;
      return {};
    }
    return TimePoint(
        std::chrono::duration_cast<TimePoint::duration>(std::chrono::milliseconds(milliseconds)));
  }
  std::string_view bytes(std::uint64_t count) {
    if (!good_ || count > input_.size() - position_) {
      good_ = false;
      return {};
    }
    std::string_view result = input_.substr(position_, count);
    position_ += count;
    return result;
  }
  std::string string() { return std::string(bytes(u32())); }
  std::size_t remaining() const { return good_ ? input_.size() - position_ : 0; }
  bool good() const { return good_; }
  bool finished() const { return good_ && position_ == input_.size(); }

 private:
  std::uint64_t little_endian(int count) {
    std::string_view raw = bytes(static_cast<std::uint64_t>(count));
    std::uint64_t value = 0;
    for (std::size_t i = 0; i < raw.size(); ++i) {
      value |= static_cast<std::uint64_t>(static_cast<unsigned char>(raw[i])) << (8 * i);
    }
    return value;
  }
  std::string_view input_;
  std::size_t position_ = 0;
  bool good_ = true;
};

// BLAKE2b-128 over the pieces, in order; keyed with the spool's key for
// version 2 records, unkeyed for version 1.
std::string hash_checksum(std::string_view first, std::string_view second, const ChecksumKey* key) {
  crypto_generichash_state state;
  crypto_generichash_init(&state, key ? key->bytes.data() : nullptr, key ? key->bytes.size() : 0,
                          checksum_size);
  crypto_generichash_update(&state, reinterpret_cast<const unsigned char*>(first.data()),
                            first.size());
  crypto_generichash_update(&state, reinterpret_cast<const unsigned char*>(second.data()),
                            second.size());
  std::string digest(checksum_size, '\0');
  crypto_generichash_final(&state, reinterpret_cast<unsigned char*>(digest.data()), digest.size());
  return digest;
}

// Version 3: the keyed hash of the CRC-32C of the pieces and of the framing
// header (the first header_size bytes of `first`), 16 bytes in, whatever the
// record's size.
std::string crc_checksum(std::string_view first, std::string_view second, const ChecksumKey& key) {
  const std::uint32_t crc = extend_crc32c(crc32c(first), second);
  std::string input;
  FieldWriter writer(input);
  writer.u32(crc);
  input.append(first.substr(0, header_size));
  return hash_checksum(input, {}, &key);
}

std::string checksum(std::uint8_t version, std::string_view first, std::string_view second,
                     const ChecksumKey* key) {
  if (version == format_version) return crc_checksum(first, second, *key);
  return hash_checksum(first, second, version == hashed_format_version ? key : nullptr);
}

// Frames a payload whose first part is already in `head` after the
// header_size placeholder bytes, and whose last part is `body`.
EncodedRecord finish(RecordType type, std::string head, const ChecksumKey* key,
                     std::shared_ptr<const std::string> body = nullptr) {
  const std::size_t payload_size = head.size() - header_size + (body ? body->size() : 0);
  std::string header;
  FieldWriter writer(header);
  header.append(magic);
  const std::uint8_t version = key ? format_version : unkeyed_format_version;
  writer.u8(version);
  writer.u8(static_cast<std::uint8_t>(type));
  writer.u16(0);
  writer.u32(static_cast<std::uint32_t>(payload_size));
  head.replace(0, header_size, header);
  EncodedRecord record;
  record.tail = checksum(version, head, body ? std::string_view(*body) : std::string_view(), key);
  record.head = std::move(head);
  record.body = std::move(body);
  return record;
}

std::string placeholder_header() { return std::string(header_size, '\0'); }

}  // namespace

EncodedRecord encode_segment_header(std::uint64_t sequence, TimePoint created,
                                    const ChecksumKey* key) {
  std::string head = placeholder_header();
  FieldWriter writer(head);
  writer.u64(sequence);
  writer.time(created);
  return finish(RecordType::segment_header, std::move(head), key);
}

EncodedRecord encode_message(const QueuedMessage& message, const ChecksumKey* key) {
  std::string head = placeholder_header();
  FieldWriter writer(head);
  writer.string(message.id);
  writer.time(message.arrival);
  std::uint8_t flags = 0;
  if (message.chat) flags |= message_flag_chat;
  if (message.bounce) flags |= message_flag_bounce;
  if (message.envelope.smtputf8) flags |= message_flag_smtputf8;
  if (message.envelope.authenticated_sender) flags |= message_flag_authenticated_sender;
  const Envelope& envelope = message.envelope;
  const bool dsn = envelope.dsn_return != DsnReturn::unspecified || !envelope.recipient_dsn.empty();
  if (dsn) flags |= message_flag_dsn;
  writer.u8(flags);
  writer.string(envelope.sender);
  writer.string(envelope.envelope_id);
  writer.u32(static_cast<std::uint32_t>(envelope.recipients.size()));
  for (const std::string& recipient : envelope.recipients) writer.string(recipient);
  if (dsn) {
    writer.u8(static_cast<std::uint8_t>(envelope.dsn_return));
    for (std::size_t i = 0; i < envelope.recipients.size(); ++i) {
      const RecipientDsn request = envelope.dsn_of(i);
      writer.u8(request.notify);
      writer.string(request.original_type);
      writer.string(request.original_address);
    }
  }
  auto data = message.data ? message.data : std::make_shared<const std::string>();
  writer.u64(data->size());
  return finish(RecordType::message, std::move(head), key, std::move(data));
}

EncodedRecord encode_state(std::string_view id, const MessageState& state, const ChecksumKey* key) {
  std::string head = placeholder_header();
  FieldWriter writer(head);
  writer.string(id);
  std::uint8_t flags = 0;
  if (state.held) flags |= state_flag_held;
  if (state.delay_warning_sent) flags |= state_flag_delay_warning_sent;
  writer.u8(flags);
  writer.u32(static_cast<std::uint32_t>(state.recipients.size()));
  for (const RecipientState& recipient : state.recipients) {
    writer.u8(static_cast<std::uint8_t>(recipient.status));
    writer.u32(recipient.attempts);
    writer.time(recipient.next_attempt);
    writer.time(recipient.last_attempt);
    std::uint8_t reporting = static_cast<std::uint8_t>(static_cast<std::uint8_t>(recipient.handoff)
                                                       << reporting_handoff_shift);
    if (recipient.failure_reported) reporting |= reporting_failure;
    if (recipient.success_reported) reporting |= reporting_success;
    writer.u8(reporting);
    writer.string(recipient.last_reply);
  }
  return finish(RecordType::state, std::move(head), key);
}

EncodedRecord encode_removal(std::string_view id, const ChecksumKey* key) {
  std::string head = placeholder_header();
  FieldWriter(head).string(id);
  return finish(RecordType::removal, std::move(head), key);
}

std::optional<std::size_t> plausible_record_size(std::string_view bytes,
                                                 std::size_t max_record_size,
                                                 const ChecksumKey* key) {
  if (bytes.size() < framing_size) return std::nullopt;
  if (bytes.substr(0, magic.size()) != magic) return std::nullopt;
  FieldReader header(bytes.substr(magic.size(), header_size - magic.size()));
  const std::uint8_t version = header.u8();
  const std::uint8_t type = header.u8();
  const std::uint16_t reserved = header.u16();
  const std::uint32_t payload_size = header.u32();
  const bool keyed = version == format_version || version == hashed_format_version;
  if (!(keyed ? key != nullptr : version == unkeyed_format_version) || reserved != 0) {
    return std::nullopt;
  }
  if (type > static_cast<std::uint8_t>(RecordType::removal)) return std::nullopt;
  if (payload_size > max_record_size || payload_size > bytes.size() - framing_size) {
    return std::nullopt;
  }
  return framing_size + payload_size;
}

std::optional<RawRecord> parse_record(std::string_view bytes, std::size_t max_record_size,
                                      const ChecksumKey* key) {
  const auto size = plausible_record_size(bytes, max_record_size, key);
  if (!size) return std::nullopt;
  const std::size_t payload_size = *size - framing_size;
  const auto version = static_cast<std::uint8_t>(bytes[magic.size()]);
  const bool keyed = version != unkeyed_format_version;
  const std::string_view covered = bytes.substr(0, header_size + payload_size);
  const std::string_view stored = bytes.substr(header_size + payload_size, checksum_size);
  const std::string expected = checksum(version, covered, {}, key);
  if (sodium_memcmp(expected.data(), stored.data(), checksum_size) != 0) return std::nullopt;
  const auto type = static_cast<RecordType>(static_cast<std::uint8_t>(bytes[5]));
  return RawRecord{type, bytes.substr(header_size, payload_size), *size, keyed};
}

std::uint64_t claimed_record_size(std::string_view bytes) {
  FieldReader header(bytes.substr(0, header_size));
  header.bytes(8);  // magic, version, type, reserved
  return framing_size + static_cast<std::uint64_t>(header.u32());
}

std::size_t find_magic(std::string_view bytes, std::size_t from) {
  const std::size_t found = bytes.find(magic, from);
  return found == std::string_view::npos ? bytes.size() : found;
}

std::optional<SegmentHeader> decode_segment_header(std::string_view payload) {
  FieldReader reader(payload);
  SegmentHeader header;
  header.sequence = reader.u64();
  header.created = reader.time();
  if (!reader.finished()) return std::nullopt;
  return header;
}

std::optional<QueuedMessage> decode_message(std::string_view payload, bool with_data) {
  FieldReader reader(payload);
  QueuedMessage message;
  message.id = reader.string();
  message.arrival = reader.time();
  const std::uint8_t flags = reader.u8();
  message.chat = (flags & message_flag_chat) != 0;
  message.bounce = (flags & message_flag_bounce) != 0;
  message.envelope.smtputf8 = (flags & message_flag_smtputf8) != 0;
  message.envelope.authenticated_sender = (flags & message_flag_authenticated_sender) != 0;
  message.envelope.sender = reader.string();
  message.envelope.envelope_id = reader.string();
  const std::uint32_t recipient_count = reader.u32();
  // Each recipient takes at least its 4-byte length: a count larger than the
  // rest of the payload is garbage, and must not reserve memory for it.
  if (!reader.good() || recipient_count > reader.remaining() / 4) return std::nullopt;
  message.envelope.recipients.reserve(recipient_count);
  for (std::uint32_t i = 0; i < recipient_count; ++i) {
    message.envelope.recipients.push_back(reader.string());
  }
  if ((flags & ~message_flags) != 0) return std::nullopt;
  if ((flags & message_flag_dsn) != 0) {
    const std::uint8_t dsn_return = reader.u8();
    if (dsn_return > highest_dsn_return) return std::nullopt;
    message.envelope.dsn_return = static_cast<DsnReturn>(dsn_return);
    // Each request takes at least 9 bytes (NOTIFY and two lengths).
    if (!reader.good() || recipient_count > reader.remaining() / 9) return std::nullopt;
    message.envelope.recipient_dsn.resize(recipient_count);
    for (RecipientDsn& request : message.envelope.recipient_dsn) {
      request.notify = reader.u8();
      if ((request.notify & ~notify::all) != 0) return std::nullopt;
      request.original_type = reader.string();
      request.original_address = reader.string();
    }
  }
  const std::uint64_t data_size = reader.u64();
  const std::string_view data = reader.bytes(data_size);
  if (!reader.finished() || message.id.empty() || recipient_count == 0) return std::nullopt;
  message.size = data_size;
  if (with_data) message.data = std::make_shared<const std::string>(data);
  return message;
}

std::optional<DecodedState> decode_state(std::string_view payload) {
  FieldReader reader(payload);
  DecodedState decoded;
  decoded.id = reader.string();
  const std::uint8_t flags = reader.u8();
  if ((flags & ~(state_flag_held | state_flag_delay_warning_sent)) != 0) return std::nullopt;
  decoded.state.held = (flags & state_flag_held) != 0;
  decoded.state.delay_warning_sent = (flags & state_flag_delay_warning_sent) != 0;
  const std::uint32_t count = reader.u32();
  // 26 bytes is the smallest encoded recipient state.
  if (!reader.good() || count > reader.remaining() / 26) return std::nullopt;
  decoded.state.recipients.resize(count);
  for (RecipientState& recipient : decoded.state.recipients) {
    const std::uint8_t status = reader.u8();
    if (status > highest_status) return std::nullopt;
    recipient.status = static_cast<RecipientStatus>(status);
    recipient.attempts = reader.u32();
    recipient.next_attempt = reader.time();
    recipient.last_attempt = reader.time();
    const std::uint8_t reporting = reader.u8();
    const std::uint8_t handoff = reporting >> reporting_handoff_shift;
    if ((reporting & ~reporting_bits) != 0 || handoff > highest_handoff) return std::nullopt;
    recipient.failure_reported = (reporting & reporting_failure) != 0;
    recipient.success_reported = (reporting & reporting_success) != 0;
    recipient.handoff = static_cast<Handoff>(handoff);
    recipient.last_reply = reader.string();
  }
  if (!reader.finished() || decoded.id.empty()) return std::nullopt;
  return decoded;
}

std::optional<std::string> decode_removal(std::string_view payload) {
  FieldReader reader(payload);
  std::string id = reader.string();
  if (!reader.finished() || id.empty()) return std::nullopt;
  return id;
}

DamagedRecordContents read_damaged_record(std::string_view bytes) {
  // Mirrors decode_message() and decode_state(), but keeps whatever reads
  // before the first field that does not. The magic and version may be the
  // damaged part, so neither is required; the length field is trusted only
  // as far as the bytes go.
  constexpr std::size_t longest_id = 64;
  // RFC 5321 4.5.3.1.3: a path is at most 256 octets; allow some slack for
  // what a damaged length field makes of it.
  constexpr std::size_t longest_address = 1024;
  constexpr std::uint32_t most_recipients = 100000;
  DamagedRecordContents contents;
  if (bytes.size() < header_size) return contents;
  FieldReader header(bytes.substr(magic.size(), header_size - magic.size()));
  header.u8();  // version
  const std::uint8_t type = header.u8();
  header.u16();
  const std::uint32_t payload_size = header.u32();
  if (type > static_cast<std::uint8_t>(RecordType::removal)) return contents;
  contents.type = static_cast<RecordType>(type);
  if (contents.type == RecordType::segment_header) return contents;
  std::string_view payload = bytes.substr(header_size);
  if (payload_size < payload.size()) payload = payload.substr(0, payload_size);
  FieldReader reader(payload);
  const auto bounded_string = [&reader](std::size_t longest) -> std::optional<std::string> {
    const std::uint32_t length = reader.u32();
    if (!reader.good() || length > longest) return std::nullopt;
    std::string_view text = reader.bytes(length);
    if (!reader.good()) return std::nullopt;
    return std::string(text);
  };
  auto id = bounded_string(longest_id);
  if (!id) return contents;
  contents.id = std::move(*id);
  if (contents.type != RecordType::message) return contents;
  reader.u64();  // arrival: not shown, and unverified bytes need not be a valid time
  reader.u8();   // flags
  contents.sender = bounded_string(longest_address);
  if (!contents.sender || !bounded_string(longest_address)) return contents;  // envelope id
  const std::uint32_t count = reader.u32();
  if (!reader.good() || count == 0 || count > most_recipients) return contents;
  for (std::uint32_t i = 0; i < count; ++i) {
    auto recipient = bounded_string(longest_address);
    if (!recipient) return contents;
    contents.recipients.push_back(std::move(*recipient));
  }
  contents.all_recipients_read = true;
  return contents;
}

}  // namespace stokend::queue::record
