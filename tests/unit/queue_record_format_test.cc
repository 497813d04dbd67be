// Unit tests for the spool's record format (queue/record_format.h).
#include <sodium.h>

#include <catch2/catch.hpp>
#include <string>

#include "queue/record_format.h"

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
