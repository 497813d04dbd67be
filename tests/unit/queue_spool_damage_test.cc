// Unit tests for a damaged spool (queue/spool.h, "Damage loses only what is
// damaged"): every byte of a small segment flipped in turn, truncated at
// every length, and damaged in 8-byte runs, each time asserting that every
// record the damage does not touch is applied and nothing else; damaged
// records named in the report; a crafted record inside a message never
// applied; spools from before the checksum key; the damage report files.
#include <algorithm>
#include <catch2/catch.hpp>
#include <filesystem>
#include <functional>
#include <map>
#include <set>
#include <string>
#include <vector>

#include "queue/damage_report.h"
#include "queue/record_format.h"
#include "queue/spool.h"
#include "queue/spool_forensics.h"
#include "queue/spool_key.h"
#include "tests/support/manual_event_loop.h"
#include "tests/support/spool_fixture.h"
#include "tests/support/temporary_directory.h"

using stokend::testing::read_whole_file;
using stokend::testing::spool_checksum_key;
using stokend::testing::spool_options;
using stokend::testing::TemporaryDirectory;
using stokend::testing::write_whole_file;

namespace fs = std::filesystem;
using namespace stokend;
using namespace stokend::queue;

namespace {

constexpr std::size_t max_size = 1 << 20;

// The exhaustive tests open a spool thousands of times; on a RAM file
// system its fsyncs cost nothing.
fs::path scratch_parent() {
  std::error_code error;
  if (fs::is_directory("/dev/shm", error)) return "/dev/shm";
  return fs::temp_directory_path();
}

// A scratch folder on the RAM file system where there is one.
class ScratchDirectory : public TemporaryDirectory {
 public:
  ScratchDirectory() : TemporaryDirectory(scratch_parent()) {}
};

QueuedMessage small_message(Spool& spool, TimePoint arrival, int number, std::string body = {}) {
  QueuedMessage message;
  message.id = spool.new_message_id();
  message.envelope.sender = "s" + std::to_string(number) + "@example.org";
  message.envelope.recipients = {"a" + std::to_string(number) + "@example.net",
                                 "b" + std::to_string(number) + "@example.net"};
  message.arrival = arrival;
  if (body.empty()) body = "Subject: " + std::to_string(number) + "\r\n\r\nhi\r\n";
  message.size = body.size();
  message.data = std::make_shared<const std::string>(std::move(body));
  return message;
}

MessageState state_with(std::size_t recipients, RecipientStatus first, int attempts) {
  MessageState state;
  state.recipients.resize(recipients);
  state.recipients[0].status = first;
  for (RecipientState& recipient : state.recipients) {
    recipient.attempts = static_cast<std::uint32_t>(attempts);
    recipient.last_reply = "451 " + std::to_string(attempts);
  }
  return state;
}

// One record of the sample segment, as written.
struct WrittenRecord {
  std::size_t offset = 0;
  std::size_t size = 0;
  record::RecordType type{};
  std::string id;
  MessageState state;            // state records
  std::size_t identity_end = 0;  // message records: end of the id field
  std::size_t envelope_end = 0;  // message records: end of the recipients
  const QueuedMessage* message = nullptr;
};

// A spool of one small segment: four messages, three state records (two of
// the same message), and a removal.
struct Sample {
  ScratchDirectory directory;
  std::string key_file;
  record::ChecksumKey key;
  std::string segment_name;
  std::string bytes;
  std::vector<QueuedMessage> messages;
  std::vector<WrittenRecord> records;  // header first

  Sample() {
    ManualEventLoop loop;
    {
      Spool spool(loop, spool_options(directory.path(), loop));
      REQUIRE_FALSE(spool.open().error);
      int completed = 0;
      const auto step = [&](const std::function<void(Spool::Done)>& request) {
        const int before = completed;
        request([&](std::error_code error) {
          CHECK_FALSE(error);
          ++completed;
        });
        REQUIRE(loop.run_until([&] { return completed > before; }));
      };
      for (int i = 0; i < 4; ++i) {
        messages.push_back(small_message(spool, loop.now(), i));
        step([&](Spool::Done done) { spool.store(messages.back(), std::move(done)); });
      }
      step([&](Spool::Done done) {
        spool.record_state(messages[0].id, state_with(2, RecipientStatus::delivered, 1),
                           std::move(done));
      });
      step([&](Spool::Done done) {
        spool.record_state(messages[2].id, state_with(2, RecipientStatus::pending, 1),
                           std::move(done));
      });
      step([&](Spool::Done done) {
        spool.record_state(messages[0].id, state_with(2, RecipientStatus::delivered, 2),
                           std::move(done));
      });
      step([&](Spool::Done done) { spool.remove(messages[3].id, std::move(done)); });
    }
    const auto entries = fs::directory_iterator(directory.path() / "segments");
    std::vector<fs::path> segments(fs::begin(entries), fs::end(entries));
    REQUIRE(segments.size() == 1);
    segment_name = segments.front().filename().string();
    bytes = read_whole_file(segments.front());
    key_file = read_whole_file(directory.path() / spool_key_file_name);
    key = spool_checksum_key(directory.path());
    for (std::size_t offset = 0; offset < bytes.size();) {
      auto raw = record::parse_record(std::string_view(bytes).substr(offset), max_size, &key);
      REQUIRE(raw);
      REQUIRE(raw->keyed);
      WrittenRecord written;
      written.offset = offset;
      written.size = raw->size;
      written.type = raw->type;
      if (raw->type == record::RecordType::message) {
        auto message = record::decode_message(raw->payload, false);
        REQUIRE(message);
        written.id = message->id;
        written.identity_end = offset + record::header_size + 4 + message->id.size();
        std::size_t envelope = record::header_size + 4 + message->id.size() + 8 + 1 + 4 +
                               message->envelope.sender.size() + 4 + 4;
        for (const std::string& recipient : message->envelope.recipients) {
          envelope += 4 + recipient.size();
        }
        written.envelope_end = offset + envelope;
        for (const QueuedMessage& sent : messages) {
          if (sent.id == message->id) written.message = &sent;
        }
      } else if (raw->type == record::RecordType::state) {
        auto decoded = record::decode_state(raw->payload);
        REQUIRE(decoded);
        written.id = decoded->id;
        written.state = decoded->state;
      } else if (raw->type == record::RecordType::removal) {
        written.id = *record::decode_removal(raw->payload);
      }
      records.push_back(written);
      offset += raw->size;
    }
    REQUIRE(records.size() == 9);  // header, 4 messages, 3 states, 1 removal
  }

  // What a restart must find when the records overlapping [begin, end) are
  // damaged: every other record applied, in order.
  std::map<std::string, MessageState> expected(std::size_t begin, std::size_t end) const {
    std::map<std::string, MessageState> live;
    for (const WrittenRecord& written : records) {
      if (written.offset < end && begin < written.offset + written.size) continue;
      switch (written.type) {
        case record::RecordType::message:
          live[written.id] = initial_state(*written.message);
          break;
        case record::RecordType::state:
          if (live.contains(written.id)) live[written.id] = written.state;
          break;
        case record::RecordType::removal:
          live.erase(written.id);
          break;
        case record::RecordType::segment_header:
          break;
      }
    }
    return live;
  }

  // Opens a copy of the spool whose segment holds `damaged` instead.
  RecoveryReport open_damaged(const std::string& damaged, const fs::path& copy) const {
    fs::create_directories(copy / "segments");
    write_whole_file(copy / spool_key_file_name, key_file);
    write_whole_file(copy / "segments" / segment_name, damaged);
    ManualEventLoop loop;
    Spool spool(loop, spool_options(copy, loop));
    return spool.open();
  }
};

std::map<std::string, MessageState> found(const RecoveryReport& report) {
  std::map<std::string, MessageState> live;
  for (const RecoveredMessage& item : report.messages) live[item.message.id] = item.state;
  return live;
}

// The damage is [begin, end) of the original segment. Checks what was
// recovered, and that a message whose record was damaged, where its id is
// still readable, is reported lost with what else is readable.
void check_damage(const Sample& sample, const std::string& damaged, std::size_t begin,
                  std::size_t end) {
  ScratchDirectory copy;
  const RecoveryReport report = sample.open_damaged(damaged, copy.path());
  REQUIRE_FALSE(report.error);
  const auto expected = sample.expected(begin, end);
  CHECK(found(report) == expected);

  for (const WrittenRecord& written : sample.records) {
    if (written.type != record::RecordType::message) continue;
    if (!(written.offset < end && begin < written.offset + written.size)) continue;
    const bool removed_later = !sample.expected(0, 0).contains(written.id);
    // The magic (behind another damaged record), the type byte, the length
    // and the id tell what the record was.
    const bool identity_damaged = (begin < written.offset + 6 && written.offset < end) ||
                                  (begin < written.identity_end && written.offset + 8 < end);
    if (removed_later || identity_damaged) continue;
    // A segment cut short is an unfinished append, cut off without a report.
    if (damaged.size() != sample.bytes.size()) continue;
    const auto named = std::find_if(report.damaged.begin(), report.damaged.end(),
                                    [&](const DamagedRecord& record) {
                                      return record.id == written.id && record.record == "message";
                                    });
    REQUIRE(named != report.damaged.end());
    CHECK(named->outcome == DamageOutcome::lost);
    CHECK(named->file == sample.segment_name);
    if (begin >= written.envelope_end) {
      CHECK(named->sender == written.message->envelope.sender);
      CHECK(named->recipients == written.message->envelope.recipients);
      CHECK_FALSE(named->recipients_incomplete);
    }
  }
  // Nothing recovered is reported lost.
  for (const DamagedRecord& record : report.damaged) {
    if (record.outcome == DamageOutcome::lost) CHECK_FALSE(expected.contains(record.id));
  }
}

}  // namespace

TEST_CASE("spool damage: every flipped byte loses only the record it is in", "[queue][damage]") {
  const Sample sample;
  for (std::size_t position = 0; position < sample.bytes.size(); ++position) {
    INFO("flipped byte " << position << " of " << sample.bytes.size());
    std::string damaged = sample.bytes;
    damaged[position] = static_cast<char>(damaged[position] ^ 0xff);
    check_damage(sample, damaged, position, position + 1);
  }
}

TEST_CASE("spool damage: 8 damaged bytes anywhere lose only the records they touch",
          "[queue][damage]") {
  const Sample sample;
  for (std::size_t position = 0; position + 8 <= sample.bytes.size(); ++position) {
    INFO("8 bytes from " << position);
    std::string damaged = sample.bytes;
    for (std::size_t i = position; i < position + 8; ++i) {
      damaged[i] = static_cast<char>(damaged[i] ^ (0x5a + i));
    }
    check_damage(sample, damaged, position, position + 8);
  }
}

TEST_CASE("spool damage: a segment cut at any length keeps every whole record", "[queue][damage]") {
  const Sample sample;
  for (std::size_t cut = 0; cut < sample.bytes.size(); ++cut) {
    INFO("cut at " << cut);
    check_damage(sample, sample.bytes.substr(0, cut), cut, sample.bytes.size());
  }
}

TEST_CASE("spool damage: a damaged header loses no message, and the report says so",
          "[queue][damage]") {
  const Sample sample;
  std::string damaged = sample.bytes;
  for (std::size_t i = 0; i < sample.records[0].size; ++i) damaged[i] = 'x';
  ScratchDirectory copy;
  const RecoveryReport report = sample.open_damaged(damaged, copy.path());
  REQUIRE_FALSE(report.error);
  CHECK(found(report) == sample.expected(0, 0));
  CHECK(found(report).size() == 3);
  CHECK(report.files_quarantined == 1);
  CHECK(report.messages_lost == 0);
  REQUIRE(report.damaged.size() == 1);
  CHECK(report.damaged[0].outcome == DamageOutcome::header);
  CHECK(report.damaged[0].length == sample.records[0].size);
  // The damaged file is kept as it was, with its report.
  const fs::path quarantine = copy.path() / "quarantine";
  CHECK(read_whole_file(quarantine / sample.segment_name) == damaged);
  const QuarantineListing listing = list_quarantine(quarantine);
  CHECK(listing.problems.empty());
  CHECK(listing.unreported_files.empty());
  REQUIRE(listing.records.size() == 1);
  CHECK(listing.records[0].outcome == DamageOutcome::header);

  // The records were copied out durably: the next start finds the same
  // messages and nothing new to quarantine.
  ManualEventLoop loop;
  Spool spool(loop, spool_options(copy.path(), loop));
  const RecoveryReport again = spool.open();
  CHECK(found(again) == sample.expected(0, 0));
  CHECK(again.files_quarantined == 0);
  CHECK(again.damaged.empty());
  for (const RecoveredMessage& item : again.messages) {
    auto loaded = spool.load_data(item.message.id);
    REQUIRE(loaded.data);
    CHECK(loaded.data->find("Subject:") == 0);
  }
}

TEST_CASE("spool damage: a lost message is named in a durable report that lists back",
          "[queue][damage]") {
  const Sample sample;
  const WrittenRecord& second = sample.records[2];  // messages[1], live at the end
  REQUIRE(second.id == sample.messages[1].id);
  std::string damaged = sample.bytes;
  // In the message's data, past its envelope.
  damaged[second.envelope_end + 12] ^= 0x01;
  ScratchDirectory copy;
  const RecoveryReport report = sample.open_damaged(damaged, copy.path());
  CHECK(report.messages_lost == 1);
  CHECK(found(report).size() == 2);
  CHECK_FALSE(found(report).contains(second.id));

  const QuarantineListing listing = list_quarantine(copy.path() / "quarantine");
  CHECK(listing.problems.empty());
  REQUIRE(listing.records.size() == 1);
  const DamagedRecord& lost = listing.records[0];
  CHECK(lost.id == second.id);
  CHECK(lost.sender == sample.messages[1].envelope.sender);
  CHECK(lost.recipients == sample.messages[1].envelope.recipients);
  CHECK(lost.offset == second.offset);
  CHECK(lost.length == second.size);
  CHECK(lost.segment == sample.segment_name);
  CHECK(lost.file == sample.segment_name);
  CHECK(lost.outcome == DamageOutcome::lost);
  CHECK(describe(lost).find(second.id) != std::string::npos);

  // A lost message stays lost: nothing resurrects it on the next start.
  ManualEventLoop loop;
  Spool spool(loop, spool_options(copy.path(), loop));
  const RecoveryReport again = spool.open();
  CHECK(found(again) == found(report));
}

TEST_CASE("spool damage: a record crafted inside a message is never applied", "[queue][damage]") {
  // A sender who knows the format embeds records in a message: a removal of
  // another queued message and a message of their own, both unkeyed, and the
  // same keyed with a key of their choosing. Then the record around them is
  // damaged, so that a scan goes through them.
  ScratchDirectory directory;
  ManualEventLoop loop;
  std::vector<QueuedMessage> messages;
  QueuedMessage injected;
  {
    Spool spool(loop, spool_options(directory.path(), loop));
    REQUIRE_FALSE(spool.open().error);
    QueuedMessage victim = small_message(spool, loop.now(), 0);
    injected = small_message(spool, loop.now(), 9);
    record::ChecksumKey guessed;
    guessed.bytes.fill(0x42);
    std::string body = "Subject: hello\r\n\r\n";
    for (const record::ChecksumKey* key : {static_cast<const record::ChecksumKey*>(nullptr),
                                           static_cast<const record::ChecksumKey*>(&guessed)}) {
      for (const auto& encoded :
           {record::encode_removal(victim.id, key), record::encode_message(injected, key)}) {
        for (std::string_view part : encoded.parts()) body.append(part);
      }
    }
    body += "\r\n";
    QueuedMessage carrier = small_message(spool, loop.now(), 1, body);
    QueuedMessage after = small_message(spool, loop.now(), 2);
    messages = {victim, carrier, after};
    int completed = 0;
    for (const QueuedMessage& message : messages) {
      spool.store(message, [&](std::error_code error) {
        CHECK_FALSE(error);
        ++completed;
      });
      const int expected = completed + 1;
      REQUIRE(loop.run_until([&] { return completed >= expected; }));
    }
  }
  const fs::path segment = *fs::directory_iterator(directory.path() / "segments");
  std::string bytes = read_whole_file(segment);
  const std::size_t carrier = bytes.find("Subject: hello");
  REQUIRE(carrier != std::string::npos);
  bytes[carrier + 3] ^= 0x10;  // in the carrier's data, before what it embeds
  write_whole_file(segment, bytes);

  Spool spool(loop, spool_options(directory.path(), loop));
  const RecoveryReport report = spool.open();
  REQUIRE_FALSE(report.error);
  std::set<std::string> ids;
  for (const RecoveredMessage& item : report.messages) ids.insert(item.message.id);
  CHECK(ids == std::set<std::string>{messages[0].id, messages[2].id});
  CHECK_FALSE(ids.contains(injected.id));
  CHECK(report.messages_lost == 1);
}

TEST_CASE("spool damage: a spool from before the key is read and upgraded", "[queue][damage]") {
  // Unkeyed (version 1) records, as spools wrote them before the key.
  ScratchDirectory directory;
  ManualEventLoop loop;
  const fs::path segments = directory.path() / "segments";
  fs::create_directories(segments);
  std::vector<QueuedMessage> messages;
  std::string bytes;
  {
    Spool ids(loop, spool_options(directory.path() / "ids", loop));  // only for message ids
    for (const auto& encoded : {record::encode_segment_header(1, loop.now())}) {
      for (std::string_view part : encoded.parts()) bytes.append(part);
    }
    for (int i = 0; i < 3; ++i) {
      messages.push_back(small_message(ids, loop.now(), i));
      const record::EncodedRecord encoded = record::encode_message(messages.back());
      for (std::string_view part : encoded.parts()) bytes.append(part);
    }
  }
  write_whole_file(segments / segment_file_name(1), bytes);
  std::map<std::string, MessageState> all;
  for (const QueuedMessage& message : messages) all[message.id] = initial_state(message);
  {
    Spool spool(loop, spool_options(directory.path(), loop));
    const RecoveryReport report = spool.open();
    REQUIRE_FALSE(report.error);
    CHECK(found(report) == all);
    CHECK(fs::file_size(directory.path() / spool_key_file_name) == record::ChecksumKey::size);
    auto loaded = spool.load_data(messages[1].id);
    REQUIRE(loaded.data);
    CHECK(*loaded.data == *messages[1].data);
  }
  // Behind damage in an unkeyed segment nothing is taken from a scan: its
  // records could have been crafted.
  std::string damaged = bytes;
  const std::size_t second = damaged.find(messages[1].id);
  damaged[second] ^= 0x01;
  ScratchDirectory copy;
  fs::create_directories(copy.path() / "segments");
  fs::copy_file(directory.path() / spool_key_file_name, copy.path() / spool_key_file_name);
  write_whole_file(copy.path() / "segments" / segment_file_name(1), damaged);
  Spool spool(loop, spool_options(copy.path(), loop));
  const RecoveryReport report = spool.open();
  REQUIRE_FALSE(report.error);
  CHECK(found(report) ==
        std::map<std::string, MessageState>{{messages[0].id, initial_state(messages[0])}});
  CHECK(report.files_quarantined == 1);
}

TEST_CASE("spool damage: a missing or damaged key stops the start and changes nothing",
          "[queue][damage]") {
  const Sample sample;
  const fs::path key = sample.directory.path() / spool_key_file_name;
  const fs::path segment = sample.directory.path() / "segments" / sample.segment_name;
  for (const std::string& contents : {std::string(), std::string("short")}) {
    if (contents.empty()) {
      fs::remove(key);
    } else {
      write_whole_file(key, contents);
    }
    ManualEventLoop loop;
    Spool spool(loop, spool_options(sample.directory.path(), loop));
    const RecoveryReport report = spool.open();
    CHECK(report.error);
    CHECK(report.error_step.find(spool_key_file_name) != std::string::npos);
    CHECK(read_whole_file(segment) == sample.bytes);
    CHECK(fs::is_empty(sample.directory.path() / "quarantine"));
  }
  write_whole_file(key, sample.key_file);
  ManualEventLoop loop;
  Spool spool(loop, spool_options(sample.directory.path(), loop));
  const RecoveryReport report = spool.open();
  REQUIRE_FALSE(report.error);
  CHECK(found(report) == sample.expected(0, 0));
}
