// Unit tests for the spool (queue/spool.h): durability, group commit,
// restart, damage handling and space reclaim.
#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <catch2/catch.hpp>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <map>
#include <set>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "queue/record_format.h"
#include "queue/spool.h"
#include "queue/spool_key.h"
#include "tests/support/manual_event_loop.h"
#include "tests/support/spool_fixture.h"
#include "tests/support/temporary_directory.h"

using stokend::testing::files_in;
using stokend::testing::read_whole_file;
using stokend::testing::spool_checksum_key;
using stokend::testing::spool_options;
using stokend::testing::TemporaryDirectory;
using stokend::testing::write_whole_file;

namespace fs = std::filesystem;
using namespace stokend;
using namespace stokend::queue;

namespace {

// A message of about `size` bytes whose body names it.
QueuedMessage make_message(Spool& spool, TimePoint arrival, std::size_t size = 1024,
                           std::vector<std::string> recipients = {"bob@example.net"}) {
  QueuedMessage message;
  message.id = spool.new_message_id();
  message.envelope.sender = "alice@example.org";
  message.envelope.recipients = std::move(recipients);
  message.arrival = arrival;
  std::string data = "Subject: " + message.id + "\r\n\r\n";
  data.resize(std::max(size, data.size() + 2), 'x');
  data.replace(data.size() - 2, 2, "\r\n");
  message.size = data.size();
  message.data = std::make_shared<const std::string>(std::move(data));
  return message;
}

// Runs the loop until a counter of completions reaches `count`.
void wait_for(ManualEventLoop& loop, const int& completed, int count) {
  REQUIRE(loop.run_until([&] { return completed >= count; }));
}

// Lets background work (space reclaim) finish.
void settle(ManualEventLoop& loop, const Spool& spool) {
  REQUIRE(loop.run_until([&] { return spool.requests_in_flight() == 0; }));
}

std::vector<QueuedMessage> store_messages(ManualEventLoop& loop, Spool& spool, int count,
                                          std::size_t size = 1024) {
  std::vector<QueuedMessage> messages;
  int completed = 0;
  for (int i = 0; i < count; ++i) {
    messages.push_back(make_message(spool, loop.now(), size));
    spool.store(messages.back(), [&](std::error_code error) {
      CHECK_FALSE(error);
      ++completed;
    });
  }
  wait_for(loop, completed, count);
  return messages;
}

std::set<std::string> ids_of(const std::vector<RecoveredMessage>& recovered) {
  std::set<std::string> ids;
  for (const auto& item : recovered) ids.insert(item.message.id);
  return ids;
}

// Offsets of the records in a segment file, header first.
std::vector<std::size_t> record_offsets(const std::string& bytes, const record::ChecksumKey& key) {
  std::vector<std::size_t> offsets;
  std::size_t offset = 0;
  while (auto raw = record::parse_record(std::string_view(bytes).substr(offset), 1 << 30, &key)) {
    offsets.push_back(offset);
    offset += raw->size;
  }
  return offsets;
}

}  // namespace

TEST_CASE("spool stores messages and state, and a restart reads them back", "[queue]") {
  TemporaryDirectory directory;
  ManualEventLoop loop;
  QueuedMessage stored;
  MessageState state;
  {
    Spool spool(loop, spool_options(directory.path(), loop));
    RecoveryReport report = spool.open();
    REQUIRE_FALSE(report.error);
    CHECK(report.messages.empty());

    stored = make_message(spool, loop.now(), 3000, {"bob@example.net", "carol@example.com"});
    stored.envelope.envelope_id = "xyz";
    stored.chat = true;
    int completed = 0;
    spool.store(stored, [&](std::error_code error) {
      CHECK_FALSE(error);
      ++completed;
    });
    CHECK(completed == 0);  // never inside the call
    wait_for(loop, completed, 1);
    CHECK(spool.contains(stored.id));
    auto loaded = spool.load_data(stored.id);
    REQUIRE(loaded.data);
    CHECK(*loaded.data == *stored.data);

    state.recipients.resize(2);
    state.recipients[0].status = RecipientStatus::delivered;
    state.recipients[0].attempts = 1;
    state.recipients[0].last_reply = "250 ok";
    state.recipients[1].attempts = 1;
    state.recipients[1].next_attempt = loop.now() + std::chrono::minutes(5);
    state.recipients[1].last_reply = "451 later";
    spool.record_state(stored.id, state, [&](std::error_code error) {
      CHECK_FALSE(error);
      ++completed;
    });
    wait_for(loop, completed, 2);
  }
  Spool spool(loop, spool_options(directory.path(), loop));
  RecoveryReport report = spool.open();
  REQUIRE_FALSE(report.error);
  REQUIRE(report.messages.size() == 1);
  const RecoveredMessage& recovered = report.messages.front();
  CHECK(recovered.message.id == stored.id);
  CHECK(recovered.message.envelope.sender == stored.envelope.sender);
  CHECK(recovered.message.envelope.recipients == stored.envelope.recipients);
  CHECK(recovered.message.envelope.envelope_id == "xyz");
  CHECK(recovered.message.chat);
  CHECK(recovered.message.arrival == stored.arrival);
  CHECK(recovered.message.size == stored.data->size());
  CHECK(recovered.message.data == nullptr);
  CHECK(recovered.state == state);
  CHECK(*spool.load_data(stored.id).data == *stored.data);
  CHECK(report.files_quarantined == 0);
  CHECK(report.torn_tails_discarded == 0);
}

TEST_CASE("spool group commit: concurrent stores share one sync per batch", "[queue]") {
  TemporaryDirectory directory;
  ManualEventLoop loop;
  std::atomic<int> syncs{0};
  SpoolOptions options = spool_options(directory.path(), loop);
  options.data_sync = [&](int descriptor) {
    ++syncs;
    // As slow as a real disk, so that requests arriving meanwhile gather.
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
    return ::fdatasync(descriptor) == 0 ? std::error_code{}
                                        : std::error_code(errno, std::system_category());
  };
  constexpr int count = 200;
  std::vector<QueuedMessage> messages;
  {
    Spool spool(loop, options);
    REQUIRE_FALSE(spool.open().error);
    messages = store_messages(loop, spool, count);
    const Spool::Statistics statistics = spool.statistics();
    INFO("batches " << statistics.batches << ", syncs " << syncs.load() << ", largest batch "
                    << statistics.largest_batch);
    CHECK(syncs.load() < count / 4);
    CHECK(statistics.batches < static_cast<std::size_t>(count) / 4);
    CHECK(statistics.largest_batch > 10);
    CHECK(statistics.requests == static_cast<std::size_t>(count));
  }
  Spool spool(loop, spool_options(directory.path(), loop));
  RecoveryReport report = spool.open();
  CHECK(report.messages.size() == static_cast<std::size_t>(count));
}

TEST_CASE("spool reports a failed sync to every request of the batch", "[queue]") {
  TemporaryDirectory directory;
  ManualEventLoop loop;
  std::atomic<bool> failing{false};
  SpoolOptions options = spool_options(directory.path(), loop);
  options.data_sync = [&](int descriptor) {
    if (failing) return std::make_error_code(std::errc::io_error);
    return ::fdatasync(descriptor) == 0 ? std::error_code{}
                                        : std::error_code(errno, std::system_category());
  };
  std::string failed_id;
  {
    Spool spool(loop, options);
    REQUIRE_FALSE(spool.open().error);
    failing = true;
    QueuedMessage message = make_message(spool, loop.now());
    failed_id = message.id;
    std::error_code result;
    int completed = 0;
    spool.store(message, [&](std::error_code error) {
      result = error;
      ++completed;
    });
    wait_for(loop, completed, 1);
    CHECK(result == std::errc::io_error);
    failing = false;
    store_messages(loop, spool, 1);  // the spool goes on, in a fresh segment
    settle(loop, spool);
  }
  // The failed message was retracted: its sender was told it failed, so it
  // must not come back after a restart.
  Spool spool(loop, spool_options(directory.path(), loop));
  RecoveryReport report = spool.open();
  CHECK(report.messages.size() == 1);
  CHECK_FALSE(ids_of(report.messages).contains(failed_id));
}

TEST_CASE("spool discards a torn write at the end of a segment", "[queue]") {
  TemporaryDirectory directory;
  ManualEventLoop loop;
  std::vector<QueuedMessage> messages;
  {
    Spool spool(loop, spool_options(directory.path(), loop));
    REQUIRE_FALSE(spool.open().error);
    messages = store_messages(loop, spool, 3);
  }
  const auto segments = files_in(directory.path() / "segments");
  REQUIRE(segments.size() == 1);
  const std::uint64_t intact_size = fs::file_size(segments.front());
  // A crash in the middle of appending a fourth message.
  std::string partial;
  {
    ManualEventLoop other;
    Spool scratch(other, spool_options(directory.path() / "scratch", other));
    REQUIRE_FALSE(scratch.open().error);
    QueuedMessage fourth = make_message(scratch, other.now());
    const record::EncodedRecord encoded = record::encode_message(fourth);
    for (std::string_view part : encoded.parts()) partial.append(part);
  }
  partial.resize(partial.size() / 2);
  write_whole_file(segments.front(), read_whole_file(segments.front()) + partial);

  Spool spool(loop, spool_options(directory.path(), loop));
  RecoveryReport report = spool.open();
  REQUIRE_FALSE(report.error);
  CHECK(report.messages.size() == 3);
  CHECK(report.torn_tails_discarded == 1);
  CHECK(report.files_quarantined == 0);
  CHECK(fs::file_size(segments.front()) == intact_size);
  CHECK(files_in(directory.path() / "quarantine").empty());
}

TEST_CASE("spool survives a crash at any byte of the newest segment", "[queue]") {
  TemporaryDirectory directory;
  ManualEventLoop loop;
  std::vector<QueuedMessage> messages;
  {
    Spool spool(loop, spool_options(directory.path(), loop));
    REQUIRE_FALSE(spool.open().error);
    messages = store_messages(loop, spool, 4, 200);
    int completed = 0;
    MessageState delivered;
    delivered.recipients.resize(1);
    delivered.recipients[0].status = RecipientStatus::delivered;
    spool.record_state(messages[0].id, delivered, [&](std::error_code) { ++completed; });
    spool.remove(messages[1].id, [&](std::error_code) { ++completed; });
    wait_for(loop, completed, 2);
  }
  const fs::path segment = files_in(directory.path() / "segments").front();
  const std::string full = read_whole_file(segment);
  const std::vector<std::size_t> offsets =
      record_offsets(full, spool_checksum_key(directory.path()));
  REQUIRE(offsets.size() == 7);  // header, 4 messages, state, removal

  for (std::size_t cut = 0; cut <= full.size(); cut += 17) {
    TemporaryDirectory copy;
    fs::create_directories(copy.path() / "segments");
    fs::copy_file(directory.path() / spool_key_file_name, copy.path() / spool_key_file_name);
    write_whole_file(copy.path() / "segments" / segment.filename(), full.substr(0, cut));
    ManualEventLoop other;
    Spool spool(other, spool_options(copy.path(), other));
    RecoveryReport report = spool.open();
    INFO("cut at " << cut);
    REQUIRE_FALSE(report.error);
    // Every record that ends before the cut is applied, nothing else.
    std::size_t complete = 0;
    for (std::size_t i = 1; i < offsets.size(); ++i) {
      const std::size_t end = i + 1 < offsets.size() ? offsets[i + 1] : full.size();
      if (end <= cut) complete = i;
    }
    std::set<std::string> expected;
    for (std::size_t i = 1; i <= std::min<std::size_t>(complete, 4); ++i) {
      expected.insert(messages[i - 1].id);
    }
    if (complete >= 6) expected.erase(messages[1].id);
    CHECK(ids_of(report.messages) == expected);
    for (const auto& item : report.messages) {
      if (item.message.id == messages[0].id) {
        CHECK((item.state.recipients[0].status == RecipientStatus::delivered) == (complete >= 5));
      }
    }
    if (cut < offsets[1]) {
      // Not even the header: the file is quarantined, never trusted.
      CHECK(report.files_quarantined == 1);
    }
  }
}

TEST_CASE("spool quarantines a corrupt segment and keeps every other message", "[queue]") {
  TemporaryDirectory directory;
  ManualEventLoop loop;
  SpoolOptions options = spool_options(directory.path(), loop);
  options.segment_size = 4096;  // about four 1 KB messages per segment
  std::vector<QueuedMessage> messages;
  {
    Spool spool(loop, options);
    REQUIRE_FALSE(spool.open().error);
    messages = store_messages(loop, spool, 12);
  }
  const auto segments = files_in(directory.path() / "segments");
  REQUIRE(segments.size() >= 3);
  // Flip one byte inside the second record of the first segment.
  std::string bytes = read_whole_file(segments.front());
  const std::vector<std::size_t> offsets =
      record_offsets(bytes, spool_checksum_key(directory.path()));
  REQUIRE(offsets.size() >= 4);
  bytes[offsets[2] + 100] ^= 0x20;
  write_whole_file(segments.front(), bytes);

  // Only the damaged message is lost: recovery resynchronises behind it, and
  // the records around it are copied out before the file is quarantined.
  std::set<std::string> expected;
  for (std::size_t i = 0; i < messages.size(); ++i) {
    if (i != 1) expected.insert(messages[i].id);
  }
  {
    Spool spool(loop, options);
    RecoveryReport report = spool.open();
    REQUIRE_FALSE(report.error);
    CHECK(report.files_quarantined == 1);
    CHECK(ids_of(report.messages) == expected);
    CHECK(report.messages_lost == 1);
    for (const auto& item : report.messages) {
      auto loaded = spool.load_data(item.message.id);
      REQUIRE(loaded.data);
      CHECK(loaded.data->find(item.message.id) != std::string::npos);
    }
    const auto quarantined = files_in(directory.path() / "quarantine");
    REQUIRE(quarantined.size() == 2);  // the segment and its damage report
    CHECK(quarantined.front().filename() == segments.front().filename());
    CHECK(quarantined.back().filename() == segments.front().filename().string() + ".damage");
  }
  // The salvaged copy is durable: a second restart finds the same messages
  // and nothing more to quarantine.
  Spool spool(loop, options);
  RecoveryReport report = spool.open();
  CHECK(ids_of(report.messages) == expected);
  CHECK(report.files_quarantined == 0);
}

TEST_CASE("spool never crashes on garbage files", "[queue]") {
  TemporaryDirectory directory;
  ManualEventLoop loop;
  {
    Spool spool(loop, spool_options(directory.path(), loop));
    REQUIRE_FALSE(spool.open().error);
    store_messages(loop, spool, 2);
  }
  const fs::path segments = directory.path() / "segments";
  std::string noise(70000, '\0');
  for (std::size_t i = 0; i < noise.size(); ++i) noise[i] = static_cast<char>((i * 7919) >> 3);
  // Noise with embedded magic bytes, to exercise the search for records.
  for (std::size_t i = 0; i < noise.size(); i += 1000) noise.replace(i, 4, "STKQ");
  write_whole_file(segments / "00000000000000f0.seg", noise);
  write_whole_file(segments / "00000000000000f1.seg", "");
  write_whole_file(segments / "0000000000000002.seg.tmp", "half a segment");
  write_whole_file(segments / "notes.txt", "someone left this here");

  Spool spool(loop, spool_options(directory.path(), loop));
  RecoveryReport report = spool.open();
  REQUIRE_FALSE(report.error);
  CHECK(report.messages.size() == 2);
  CHECK(report.files_quarantined == 3);
  CHECK_FALSE(fs::exists(segments / "0000000000000002.seg.tmp"));
  CHECK(fs::exists(directory.path() / "quarantine" / "notes.txt"));
  CHECK(fs::exists(directory.path() / "quarantine" / "00000000000000f0.seg"));
  // New segments are numbered after everything seen, quarantined or not.
  CHECK(fs::exists(segments / "00000000000000f2.seg"));
}

TEST_CASE("spool reclaims space and removed messages stay removed", "[queue]") {
  TemporaryDirectory directory;
  ManualEventLoop loop;
  SpoolOptions options = spool_options(directory.path(), loop);
  options.segment_size = 4096;
  std::vector<QueuedMessage> messages;
  std::set<std::string> kept;
  MessageState latest;
  {
    Spool spool(loop, options);
    REQUIRE_FALSE(spool.open().error);
    messages = store_messages(loop, spool, 40);
    REQUIRE(spool.statistics().segments >= 10);
    // Keep two old messages, remove the rest: the old segments fall below
    // the compaction threshold, their survivors are copied forward and the
    // segments deleted.
    int completed = 0;
    int expected = 0;
    for (std::size_t i = 0; i < messages.size(); ++i) {
      if (i == 1 || i == 6) {
        kept.insert(messages[i].id);
        continue;
      }
      spool.remove(messages[i].id, [&](std::error_code error) {
        CHECK_FALSE(error);
        ++completed;
      });
      ++expected;
    }
    wait_for(loop, completed, expected);
    settle(loop, spool);
    // A state recorded after compaction is the one a restart sees.
    latest.recipients.resize(1);
    latest.recipients[0].attempts = 3;
    latest.recipients[0].last_reply = "451 still not";
    spool.record_state(messages[6].id, latest, [&](std::error_code error) {
      CHECK_FALSE(error);
      ++completed;
    });
    wait_for(loop, completed, expected + 1);
    settle(loop, spool);
    const Spool::Statistics statistics = spool.statistics();
    INFO("segments " << statistics.segments << " deleted " << statistics.segments_deleted
                     << " compacted " << statistics.segments_compacted);
    CHECK(statistics.segments_deleted >= 8);
    CHECK(statistics.segments_compacted >= 1);
    CHECK(statistics.messages == 2);
    CHECK(statistics.segments <= 3);
    for (const std::string& id : kept) CHECK(spool.load_data(id).data);
  }
  Spool spool(loop, options);
  RecoveryReport report = spool.open();
  CHECK(ids_of(report.messages) == kept);
  CHECK(report.files_quarantined == 0);
  for (const auto& item : report.messages) {
    if (item.message.id == messages[6].id) CHECK(item.state == latest);
    CHECK(spool.load_data(item.message.id).data);
  }
}

TEST_CASE("spool refuses requests it cannot honour", "[queue]") {
  TemporaryDirectory directory;
  ManualEventLoop loop;
  Spool spool(loop, spool_options(directory.path(), loop));
  REQUIRE_FALSE(spool.open().error);
  std::vector<std::error_code> results;
  const auto record = [&](std::error_code error) { results.push_back(error); };
  spool.record_state("nope", MessageState{}, record);
  spool.remove("nope", record);
  QueuedMessage no_recipients = make_message(spool, loop.now());
  no_recipients.envelope.recipients.clear();
  spool.store(no_recipients, record);
  REQUIRE(loop.run_until([&] { return results.size() == 3; }));
  CHECK(results[0] == std::errc::no_such_file_or_directory);
  CHECK(results[1] == std::errc::no_such_file_or_directory);
  CHECK(results[2] == std::errc::invalid_argument);
  CHECK(spool.load_data("nope").error == std::errc::no_such_file_or_directory);
  // Ids are unique.
  std::set<std::string> ids;
  for (int i = 0; i < 10000; ++i) ids.insert(spool.new_message_id());
  CHECK(ids.size() == 10000);
}

TEST_CASE("spool matches a model through random changes, compactions and restarts", "[queue]") {
  TemporaryDirectory directory;
  ManualEventLoop loop;
  SpoolOptions options = spool_options(directory.path(), loop);
  options.segment_size = 8192;
  options.compaction_threshold = 0.5;  // compact eagerly
  options.data_sync = [](int) { return std::error_code{}; };

  struct Expected {
    std::string data;
    MessageState state;
    bool stored = false;  // a state or removal needs a stored message, as in the queue
  };
  std::map<std::string, Expected> model;
  std::uint64_t seed = 12345;
  const auto random = [&](std::uint64_t bound) {
    seed = seed * 6364136223846793005ULL + 1442695040888963407ULL;
    return (seed >> 33) % bound;
  };

  auto spool = std::make_unique<Spool>(loop, options);
  REQUIRE_FALSE(spool->open().error);
  std::size_t compacted = 0;
  std::size_t deleted = 0;
  for (int round = 0; round < 40; ++round) {
    int completed = 0;
    int submitted = 0;
    for (int step = 0; step < 40; ++step) {
      const std::uint64_t choice = random(10);
      std::vector<std::string> stored;
      for (const auto& [id, expected] : model) {
        if (expected.stored) stored.push_back(id);
      }
      if (stored.empty() || choice < 4) {
        QueuedMessage message = make_message(*spool, loop.now(), 100 + random(1500),
                                             {"a@example.net", "b@example.net"});
        model[message.id] = Expected{*message.data, {}};
        model[message.id].state.recipients.resize(2);
        for (auto& recipient : model[message.id].state.recipients) {
          recipient.next_attempt = message.arrival;
        }
        spool->store(message, [&, id = message.id](std::error_code error) {
          CHECK_FALSE(error);
          model[id].stored = true;
          ++completed;
        });
      } else {
        auto it = model.find(stored[random(stored.size())]);
        if (choice < 8) {
          MessageState& state = it->second.state;
          state.recipients[random(2)].attempts += 1;
          state.recipients[random(2)].last_reply = "reply " + std::to_string(random(1000));
          state.held = random(2) == 0;
          spool->record_state(it->first, state, [&](std::error_code error) {
            CHECK_FALSE(error);
            ++completed;
          });
        } else {
          spool->remove(it->first, [&](std::error_code error) {
            CHECK_FALSE(error);
            ++completed;
          });
          model.erase(it);
        }
      }
      ++submitted;
      // Sometimes let the writer catch up, so compactions interleave.
      if (random(4) == 0) loop.run_posted();
    }
    wait_for(loop, completed, submitted);
    settle(loop, *spool);
    compacted += spool->statistics().segments_compacted;
    deleted += spool->statistics().segments_deleted;
    for (const auto& [id, expected] : model) {
      auto loaded = spool->load_data(id);
      REQUIRE(loaded.data);
      CHECK(*loaded.data == expected.data);
    }
    if (round % 3 == 2) {
      spool.reset();
      spool = std::make_unique<Spool>(loop, options);
      RecoveryReport report = spool->open();
      REQUIRE_FALSE(report.error);
      CHECK(report.files_quarantined == 0);
      REQUIRE(report.messages.size() == model.size());
      for (const auto& item : report.messages) {
        auto expected = model.find(item.message.id);
        REQUIRE(expected != model.end());
        CHECK(item.state == expected->second.state);
        CHECK(*spool->load_data(item.message.id).data == expected->second.data);
      }
      settle(loop, *spool);
    }
  }
  INFO("compacted " << compacted << ", deleted " << deleted);
  CHECK(compacted > 0);
  CHECK(deleted > 0);
  // Space stays bounded by what is live.
  const Spool::Statistics statistics = spool->statistics();
  CHECK(statistics.bytes < 4 * statistics.live_bytes + 4 * options.segment_size);
}
