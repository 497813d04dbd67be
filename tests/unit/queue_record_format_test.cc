// Unit tests for the spool's record format (queue/record_format.h).
#include <sodium.h>

#include <catch2/catch.hpp>
#include <string>

#include "queue/record_format.h"

using namespace stokend;
using namespace stokend::queue;

namespace {

constexpr std::size_t max_size = 1024 * 1024;

std::string join(const record::EncodedRecord& encoded) {
  std::string bytes;
  for (std::string_view part : encoded.parts()) bytes.append(part);
  return bytes;
}

QueuedMessage sample_message() {
  QueuedMessage message;
  message.id = "0123456789abcdef0123";
  message.envelope.sender = "alice@example.org";
  message.envelope.recipients = {"bob@example.net", "carol@example.com"};
  message.envelope.envelope_id = "env-42";
  message.envelope.smtputf8 = true;
  message.arrival = TimePoint(std::chrono::milliseconds(1'700'000'000'123));
  message.chat = true;
  message.data = std::make_shared<const std::string>(
      std::string("Subject: hi\r\n\r\nbinary \0 and STKQ inside\r\n", 41));
  message.size = message.data->size();
  return message;
}

}  // namespace

TEST_CASE("record format: a message record round-trips", "[queue]") {
  REQUIRE(sodium_init() >= 0);
  const QueuedMessage message = sample_message();
  const std::string bytes = join(record::encode_message(message));
  auto raw = record::parse_record(bytes, max_size);
  REQUIRE(raw);
  CHECK(raw->type == record::RecordType::message);
  CHECK(raw->size == bytes.size());
  auto decoded = record::decode_message(raw->payload, true);
  REQUIRE(decoded);
  CHECK(decoded->id == message.id);
  CHECK(decoded->envelope.sender == message.envelope.sender);
  CHECK(decoded->envelope.recipients == message.envelope.recipients);
  CHECK(decoded->envelope.envelope_id == "env-42");
  CHECK(decoded->envelope.smtputf8);
  CHECK(decoded->chat);
  CHECK_FALSE(decoded->bounce);
  CHECK(decoded->arrival == message.arrival);
  CHECK(*decoded->data == *message.data);
  CHECK(decoded->size == message.data->size());

  auto without_data = record::decode_message(raw->payload, false);
  REQUIRE(without_data);
  CHECK(without_data->data == nullptr);
  CHECK(without_data->size == message.data->size());
}

TEST_CASE("record format: state, removal and header records round-trip", "[queue]") {
  MessageState state;
  state.held = true;
  state.recipients.resize(2);
  state.recipients[0].status = RecipientStatus::delivered;
  state.recipients[0].attempts = 1;
  state.recipients[0].last_reply = "250 2.0.0 ok";
  state.recipients[1].status = RecipientStatus::expired;
  state.recipients[1].attempts = 77;
  state.recipients[1].failure_reported = true;
  state.recipients[1].next_attempt = TimePoint(std::chrono::milliseconds(5000));
  state.recipients[1].last_attempt = TimePoint(std::chrono::milliseconds(4000));

  const std::string state_bytes = join(record::encode_state("m1", state));
  auto raw = record::parse_record(state_bytes, max_size);
  REQUIRE(raw);
  REQUIRE(raw->type == record::RecordType::state);
  auto decoded = record::decode_state(raw->payload);
  REQUIRE(decoded);
  CHECK(decoded->id == "m1");
  CHECK(decoded->state == state);

  const std::string removal = join(record::encode_removal("m1"));
  raw = record::parse_record(removal, max_size);
  REQUIRE(raw);
  CHECK(record::decode_removal(raw->payload) == "m1");

  const std::string header = join(record::encode_segment_header(9, TimePoint{}));
  raw = record::parse_record(header, max_size);
  REQUIRE(raw);
  CHECK(record::decode_segment_header(raw->payload)->sequence == 9);
}

TEST_CASE("record format: any flipped bit or truncation is detected", "[queue]") {
  const std::string bytes = join(record::encode_message(sample_message()));
  for (std::size_t position = 0; position < bytes.size(); ++position) {
    for (int bit = 0; bit < 8; bit += 3) {
      std::string damaged = bytes;
      damaged[position] = static_cast<char>(damaged[position] ^ (1 << bit));
      INFO("position " << position << " bit " << bit);
      CHECK_FALSE(record::parse_record(damaged, max_size));
    }
  }
  for (std::size_t length = 0; length < bytes.size(); ++length) {
    INFO("length " << length);
    CHECK_FALSE(record::parse_record(std::string_view(bytes).substr(0, length), max_size));
  }
}

TEST_CASE("record format: lengths beyond the limit or the input are refused", "[queue]") {
  std::string bytes = join(record::encode_removal("x"));
  CHECK_FALSE(record::parse_record(bytes, 4));  // payload is 5 bytes
  CHECK(record::parse_record(bytes, 5));
  // Garbage that starts like a record but claims 4 GB.
  std::string garbage = "STKQ\x01\x01\0\0\xff\xff\xff\xff" + std::string(100, 'x');
  garbage[6] = 0;
  garbage[7] = 0;
  CHECK_FALSE(record::parse_record(garbage, max_size));
}

TEST_CASE("record format: payloads that do not decode exactly are refused", "[queue]") {
  CHECK_FALSE(record::decode_message("", true));
  CHECK_FALSE(record::decode_message(std::string(3, '\xff'), true));
  CHECK_FALSE(record::decode_state(std::string(64, '\xff')));
  CHECK_FALSE(record::decode_removal(std::string("\x01\0\0\0ab", 6)));  // one byte too many
  CHECK_FALSE(record::decode_removal(std::string("\0\0\0\0", 4)));      // empty id
}

TEST_CASE("record format: DSN requests round-trip", "[queue][dsn]") {
  QueuedMessage message = sample_message();
  message.envelope.dsn_return = DsnReturn::headers;
  message.envelope.recipient_dsn.resize(2);
  message.envelope.recipient_dsn[0].notify = notify::success | notify::delay;
  message.envelope.recipient_dsn[0].original_type = "rfc822";
  message.envelope.recipient_dsn[0].original_address = "Bob+Sales@example.net";
  message.envelope.recipient_dsn[1].notify = notify::never;
  const std::string bytes = join(record::encode_message(message));
  auto raw = record::parse_record(bytes, max_size);
  REQUIRE(raw);
  auto decoded = record::decode_message(raw->payload, true);
  REQUIRE(decoded);
  CHECK(decoded->envelope.dsn_return == DsnReturn::headers);
  CHECK(decoded->envelope.recipient_dsn == message.envelope.recipient_dsn);
  CHECK(decoded->envelope.recipients == message.envelope.recipients);
  CHECK(*decoded->data == *message.data);

  // RET alone is enough to keep the block; NOTIFY values beyond the four
  // bits are refused as damage.
  QueuedMessage ret_only = sample_message();
  ret_only.envelope.dsn_return = DsnReturn::full;
  const std::string ret_only_bytes = join(record::encode_message(ret_only));
  raw = record::parse_record(ret_only_bytes, max_size);
  REQUIRE(raw);
  decoded = record::decode_message(raw->payload, false);
  REQUIRE(decoded);
  CHECK(decoded->envelope.dsn_return == DsnReturn::full);
  CHECK(decoded->envelope.recipient_dsn.size() == 2);
  CHECK(decoded->envelope.dsn_of(0) == RecipientDsn{});

  message.envelope.recipient_dsn[1].notify = 0x10;
  const std::string bad_bytes = join(record::encode_message(message));
  raw = record::parse_record(bad_bytes, max_size);
  REQUIRE(raw);
  CHECK_FALSE(record::decode_message(raw->payload, true));
}

TEST_CASE("record format: a message without DSN requests is written as before", "[queue][dsn]") {
  // The first format's message payload, written field by field: records
  // already in a spool must decode, and a message without DSN requests must
  // still be written exactly so.
  const QueuedMessage message = sample_message();
  std::string payload;
  auto u32 = [&](std::uint32_t value) {
    for (int i = 0; i < 4; ++i) payload.push_back(static_cast<char>((value >> (8 * i)) & 0xff));
  };
  auto u64 = [&](std::uint64_t value) {
    for (int i = 0; i < 8; ++i) payload.push_back(static_cast<char>((value >> (8 * i)) & 0xff));
  };
  auto string = [&](const std::string& text) {
    u32(static_cast<std::uint32_t>(text.size()));
    payload += text;
  };
  string(message.id);
  u64(1'700'000'000'123);
  payload.push_back(static_cast<char>(1 | 4));  // chat, smtputf8
  string(message.envelope.sender);
  string(message.envelope.envelope_id);
  u32(2);
  string("bob@example.net");
  string("carol@example.com");
  u64(message.data->size());
  payload += *message.data;

  auto decoded = record::decode_message(payload, true);
  REQUIRE(decoded);
  CHECK(decoded->envelope.recipients == message.envelope.recipients);
  CHECK(decoded->envelope.dsn_return == DsnReturn::unspecified);
  CHECK(decoded->envelope.recipient_dsn.empty());
  CHECK(decoded->envelope.wants_notification(0, notify::failure));
  CHECK_FALSE(decoded->envelope.wants_notification(0, notify::success));

  const std::string bytes = join(record::encode_message(message));
  auto raw = record::parse_record(bytes, max_size);
  REQUIRE(raw);
  CHECK(raw->payload == payload);
}

TEST_CASE("record format: success reports and handoffs in the state record", "[queue][dsn]") {
  MessageState state;
  state.recipients.resize(3);
  state.recipients[0].status = RecipientStatus::delivered;
  state.recipients[0].handoff = Handoff::mailstore;
  state.recipients[0].success_reported = true;
  state.recipients[1].status = RecipientStatus::delivered;
  state.recipients[1].handoff = Handoff::relayed_with_dsn;
  state.recipients[2].status = RecipientStatus::failed;
  state.recipients[2].failure_reported = true;
  const std::string bytes = join(record::encode_state("m2", state));
  auto raw = record::parse_record(bytes, max_size);
  REQUIRE(raw);
  auto decoded = record::decode_state(raw->payload);
  REQUIRE(decoded);
  CHECK(decoded->state == state);

  // The first format wrote 0 or 1 in that byte: it still means "failure
  // reported", with the default handoff.
  MessageState old_state;
  old_state.recipients.resize(1);
  old_state.recipients[0].status = RecipientStatus::failed;
  old_state.recipients[0].failure_reported = true;
  const std::string old_bytes = join(record::encode_state("m3", old_state));
  raw = record::parse_record(old_bytes, max_size);
  REQUIRE(raw);
  const std::string old_payload(raw->payload);
  // id (4 + 2), flags (1), count (4), status (1), attempts (4), two times (16): then the byte.
  REQUIRE(old_payload[6 + 1 + 4 + 1 + 4 + 16] == 1);
  decoded = record::decode_state(old_payload);
  REQUIRE(decoded);
  CHECK(decoded->state.recipients[0].failure_reported);
  CHECK_FALSE(decoded->state.recipients[0].success_reported);
  CHECK(decoded->state.recipients[0].handoff == Handoff::relayed);

  // A handoff beyond the known ones is damage.
  std::string bad = old_payload;
  bad[6 + 1 + 4 + 1 + 4 + 16] = static_cast<char>(3 << 2);
  CHECK_FALSE(record::decode_state(bad));
  bad[6 + 1 + 4 + 1 + 4 + 16] = static_cast<char>(0x10);
  CHECK_FALSE(record::decode_state(bad));
}

namespace {

record::ChecksumKey key_of(unsigned char fill) {
  record::ChecksumKey key;
  key.bytes.fill(fill);
  return key;
}

// A version 2 record, as spools wrote them before version 3: the keyed
// BLAKE2b-128 of the header and payload.
std::string as_version_2(std::string bytes, const record::ChecksumKey& key) {
  bytes[4] = static_cast<char>(record::hashed_format_version);
  const std::size_t covered = bytes.size() - record::checksum_size;
  unsigned char digest[record::checksum_size];
  crypto_generichash(digest, sizeof digest, reinterpret_cast<const unsigned char*>(bytes.data()),
                     covered, key.bytes.data(), key.bytes.size());
  bytes.replace(covered, record::checksum_size, reinterpret_cast<const char*>(digest),
                sizeof digest);
  return bytes;
}

}  // namespace

TEST_CASE("record format: keyed records are version 3 and verify only with their key", "[queue]") {
  const auto key = key_of(7);
  const auto other = key_of(8);
  const std::string bytes = join(record::encode_message(sample_message(), &key));
  CHECK(static_cast<std::uint8_t>(bytes[4]) == record::format_version);
  const auto raw = record::parse_record(bytes, max_size, &key);
  REQUIRE(raw);
  CHECK(raw->keyed);
  CHECK(raw->size == bytes.size());
  CHECK(record::decode_message(raw->payload, false)->id == sample_message().id);
  CHECK_FALSE(record::parse_record(bytes, max_size, &other));
  CHECK_FALSE(record::parse_record(bytes, max_size, nullptr));
  // The same bytes claiming to be version 2 (whose checksum hashes everything) do not verify.
  std::string relabelled = bytes;
  relabelled[4] = static_cast<char>(record::hashed_format_version);
  CHECK_FALSE(record::parse_record(relabelled, max_size, &key));
}

TEST_CASE("record format: any flipped bit in a version 3 record is detected", "[queue]") {
  const auto key = key_of(3);
  const std::string bytes = join(record::encode_message(sample_message(), &key));
  for (std::size_t position = 0; position < bytes.size(); ++position) {
    for (int bit = 0; bit < 8; ++bit) {
      std::string damaged = bytes;
      damaged[position] = static_cast<char>(damaged[position] ^ (1 << bit));
      INFO("position " << position << " bit " << bit);
      CHECK_FALSE(record::parse_record(damaged, max_size, &key));
    }
  }
  // Two bytes of the payload swapped keep the bytes' sum but not the CRC.
  std::string swapped = bytes;
  std::swap(swapped[record::header_size + 4], swapped[record::header_size + 5]);
  REQUIRE(swapped != bytes);
  CHECK_FALSE(record::parse_record(swapped, max_size, &key));
}

TEST_CASE("record format: version 2 records written before version 3 are still read", "[queue]") {
  const auto key = key_of(5);
  const std::string version_2 = as_version_2(join(record::encode_message(sample_message())), key);
  const auto raw = record::parse_record(version_2, max_size, &key);
  REQUIRE(raw);
  CHECK(raw->keyed);
  const auto message = record::decode_message(raw->payload, true);
  REQUIRE(message);
  REQUIRE(message->data);
  CHECK(*message->data == *sample_message().data);
  CHECK_FALSE(record::parse_record(version_2, max_size, nullptr));
  const auto other = key_of(6);
  CHECK_FALSE(record::parse_record(version_2, max_size, &other));
}

TEST_CASE("record format: the authenticated-sender flag round-trips and is off in older records",
          "[queue]") {
  QueuedMessage message = sample_message();
  message.envelope.authenticated_sender = true;
  const std::string bytes = join(record::encode_message(message));
  auto decoded = record::decode_message(record::parse_record(bytes, max_size)->payload, false);
  REQUIRE(decoded);
  CHECK(decoded->envelope.authenticated_sender);
  CHECK(decoded->envelope.smtputf8);
  // What was written before the flag: the same record without it.
  const std::string older = join(record::encode_message(sample_message()));
  auto old_decoded = record::decode_message(record::parse_record(older, max_size)->payload, false);
  REQUIRE(old_decoded);
  CHECK_FALSE(old_decoded->envelope.authenticated_sender);
}
