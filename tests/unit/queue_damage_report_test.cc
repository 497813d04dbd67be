// Unit tests for damage report lines (queue/damage_report.h) and the lenient
// reader of damaged records (record::read_damaged_record).
#include <catch2/catch.hpp>
#include <string>

#include "queue/damage_report.h"
#include "queue/record_format.h"

using namespace stokend;
using namespace stokend::queue;

namespace {

DamagedRecord sample() {
  DamagedRecord damaged;
  damaged.segment = "0000000000000002.seg";
  damaged.file = "0000000000000002.seg.1";
  damaged.offset = 120;
  damaged.length = 310;
  damaged.record = "message";
  damaged.id = "0123456789abcdef0123";
  damaged.sender = "";
  damaged.recipients = {"a b@example.net", "c,d=e%f@example.net", "\xc3\xa9@example.net"};
  damaged.recipients_incomplete = true;
  damaged.outcome = DamageOutcome::lost;
  return damaged;
}

}  // namespace

TEST_CASE("damage report: a line reads back to the same fields", "[queue]") {
  const DamagedRecord damaged = sample();
  const std::string line = format_damage_line(damaged);
  CHECK(line ==
        "segment=0000000000000002.seg file=0000000000000002.seg.1 offset=120 length=310 "
        "record=message id=0123456789abcdef0123 sender= "
        "recipients=a%20b@example.net,c%2Cd%3De%25f@example.net,%C3%A9@example.net "
        "recipients_incomplete=yes outcome=lost");
  const auto parsed = parse_damage_line(line);
  REQUIRE(parsed);
  CHECK(parsed->segment == damaged.segment);
  CHECK(parsed->file == damaged.file);
  CHECK(parsed->offset == 120);
  CHECK(parsed->length == 310);
  CHECK(parsed->record == "message");
  CHECK(parsed->id == damaged.id);
  CHECK(parsed->sender == std::optional<std::string>(""));
  CHECK(parsed->recipients == damaged.recipients);
  CHECK(parsed->recipients_incomplete);
  CHECK(parsed->outcome == DamageOutcome::lost);
  CHECK(describe(*parsed) ==
        "message record of message 0123456789abcdef0123 from <> to <a%20b@example.net>, "
        "<c%2Cd%3De%25f@example.net>, <%C3%A9@example.net> and more at offset 120 of "
        "0000000000000002.seg (310 bytes): lost");

  DamagedRecord bare;
  bare.segment = "0000000000000003.seg";
  bare.offset = 0;
  bare.length = 44;
  bare.record = "header";
  bare.outcome = DamageOutcome::header;
  const auto again = parse_damage_line(format_damage_line(bare));
  REQUIRE(again);
  CHECK(again->file.empty());
  CHECK_FALSE(again->sender);
  CHECK(again->recipients.empty());
  CHECK(again->outcome == DamageOutcome::header);
}

TEST_CASE("damage report: anything but a well-formed line is refused", "[queue]") {
  const std::string line = format_damage_line(sample());
  REQUIRE(parse_damage_line(line));
  for (const std::string& bad : {
           std::string(),
           line + " ",
           line + " extra=1",
           " " + line,
           line.substr(0, line.size() - 1),
           std::string("segment=a file=b offset=01 length=1 record=state outcome=lost"),
           std::string("segment=a file=b offset=1 length=-1 record=state outcome=lost"),
           std::string("segment=a file=b offset=1 length=1 record=other outcome=lost"),
           std::string("segment=a file=b offset=1 length=1 record=state outcome=gone"),
           std::string("segment=a file=b offset=1 length=1 record=state id= outcome=lost"),
           std::string("segment=a file=b offset=1 length=1 record=state id=%41 outcome=lost"),
           std::string("segment=a file=b offset=1 length=1 record=state id=%4 outcome=lost"),
           std::string("segment=a file=b offset=1 length=1 record=state id=%e9 outcome=lost"),
           std::string("segment=a file=b length=1 offset=1 record=state outcome=lost"),
           std::string("segment=a file=b offset=1 length=1 record=state "
                       "recipients_incomplete=no outcome=lost"),
           std::string("segment=a file=b offset=99999999999999999999 length=1 record=state "
                       "outcome=lost"),
       }) {
    INFO(bad);
    CHECK_FALSE(parse_damage_line(bad));
  }
}

TEST_CASE("damaged records: what is intact is read, unverified", "[queue]") {
  QueuedMessage message;
  message.id = "0123456789abcdef0123";
  message.envelope.sender = "alice@example.org";
  message.envelope.recipients = {"bob@example.net", "carol@example.net"};
  message.data = std::make_shared<const std::string>("Subject: x\r\n\r\nbody\r\n");
  std::string bytes;
  const record::EncodedRecord encoded = record::encode_message(message);
  for (std::string_view part : encoded.parts()) bytes.append(part);

  // Damage in the data: the envelope is all there.
  std::string damaged = bytes;
  damaged[damaged.size() - 20] ^= 0x01;
  REQUIRE_FALSE(record::parse_record(damaged, 1 << 20));
  auto contents = record::read_damaged_record(damaged);
  REQUIRE(contents.type);
  CHECK(*contents.type == record::RecordType::message);
  CHECK(contents.id == message.id);
  CHECK(contents.sender == message.envelope.sender);
  CHECK(contents.recipients == message.envelope.recipients);
  CHECK(contents.all_recipients_read);

  // Damage in the arrival time, to a value no TimePoint holds: still read.
  std::string bad_time = bytes;
  const std::size_t arrival = record::header_size + 4 + message.id.size();
  for (std::size_t i = 0; i < 8; ++i) bad_time[arrival + i] = '\x7f';
  contents = record::read_damaged_record(bad_time);
  CHECK(contents.sender == message.envelope.sender);
  CHECK(contents.all_recipients_read);
  // The strict decoder refuses such a time instead of overflowing.
  const std::string_view payload = std::string_view(bad_time).substr(
      record::header_size, bad_time.size() - record::framing_size);
  CHECK_FALSE(record::decode_message(payload, true));
  CHECK(record::decode_message(
      std::string_view(bytes).substr(record::header_size, bytes.size() - record::framing_size),
      true));

  // Cut inside the second recipient: the first is still named.
  const std::size_t carol = bytes.find("carol");
  contents = record::read_damaged_record(std::string_view(bytes).substr(0, carol + 2));
  CHECK(contents.id == message.id);
  CHECK(contents.recipients == std::vector<std::string>{"bob@example.net"});
  CHECK_FALSE(contents.all_recipients_read);

  // A state record names its message only.
  std::string state;
  MessageState snapshot;
  snapshot.recipients.resize(1);
  const record::EncodedRecord encoded_state = record::encode_state("feed", snapshot);
  for (std::string_view part : encoded_state.parts()) state.append(part);
  contents = record::read_damaged_record(state);
  CHECK(*contents.type == record::RecordType::state);
  CHECK(contents.id == "feed");
  CHECK_FALSE(contents.sender);

  // An impossible type byte, or too little to hold a header: nothing.
  damaged = bytes;
  damaged[5] = 9;
  CHECK_FALSE(record::read_damaged_record(damaged).type);
  CHECK_FALSE(record::read_damaged_record(std::string_view(bytes).substr(0, 11)).type);
  // A length beyond the bytes does not make it read past them.
  damaged = bytes.substr(0, 30);
  damaged[8] = static_cast<char>(0xff);
  contents = record::read_damaged_record(damaged);
  CHECK(contents.id.empty());
}
