// Unit tests for the spool on a full file system (queue/spool.h, "Start on
// a full file system"): it starts, recovers, refuses what does not fit with
// an out-of-space error, and goes on by itself once space returns. On a
// small tmpfs of its own (tests/support/small_file_system.h).
#include <algorithm>
#include <catch2/catch.hpp>
#include <filesystem>
#include <set>
#include <string>
#include <system_error>
#include <vector>

#include "queue/free_space.h"
#include "queue/queue_defaults.h"
#include "queue/spool.h"
#include "tests/support/manual_event_loop.h"
#include "tests/support/small_file_system.h"
#include "tests/support/spool_fixture.h"

using stokend::testing::SmallFileSystem;
using stokend::testing::spool_options;
using namespace stokend;
using namespace stokend::queue;
namespace fs = std::filesystem;

namespace {

QueuedMessage message_of(Spool& spool, TimePoint arrival, std::size_t size) {
  QueuedMessage message;
  message.id = spool.new_message_id();
  message.envelope.sender = "alice@example.org";
  message.envelope.recipients = {"bob@example.net"};
  message.arrival = arrival;
  std::string data = "Subject: " + message.id + "\r\n\r\n";
  data.resize(std::max(size, data.size() + 2), 'x');
  data.replace(data.size() - 2, 2, "\r\n");
  message.size = data.size();
  message.data = std::make_shared<const std::string>(std::move(data));
  return message;
}

// Stores one message and returns the result.
std::error_code store_one(ManualEventLoop& loop, Spool& spool, const QueuedMessage& message) {
  std::error_code result;
  bool done = false;
  spool.store(message, [&](std::error_code error) {
    result = error;
    done = true;
  });
  REQUIRE(loop.run_until([&] { return done; }));
  return result;
}

std::error_code remove_one(ManualEventLoop& loop, Spool& spool, const std::string& id) {
  std::error_code result;
  bool done = false;
  spool.remove(id, [&](std::error_code error) {
    result = error;
    done = true;
  });
  REQUIRE(loop.run_until([&] { return done; }));
  return result;
}

std::size_t segment_count(const fs::path& spool) {
  return static_cast<std::size_t>(
      std::distance(fs::directory_iterator(spool / "segments"), fs::directory_iterator()));
}

std::set<std::string> ids_of(const RecoveryReport& report) {
  std::set<std::string> ids;
  for (const auto& item : report.messages) ids.insert(item.message.id);
  return ids;
}

// Bigger than the headroom the active segment keeps allocated, so it never
// fits a full file system.
constexpr std::size_t large = defaults::segment_headroom + 64 * 1024;

}  // namespace

TEST_CASE("spool starts on a full file system and goes on once space returns",
          "[queue][full_disk]") {
  SmallFileSystem disk(1024);
  if (!disk.mounted()) {
    WARN("skipped: " << disk.why_not());
    return;
  }
  const fs::path directory = disk.path() / "spool";
  ManualEventLoop loop;
  std::set<std::string> queued;
  {
    Spool spool(loop, spool_options(directory, loop));
    REQUIRE_FALSE(spool.open().error);
    for (int i = 0; i < 3; ++i) {
      QueuedMessage message = message_of(spool, loop.now(), 2000);
      REQUIRE_FALSE(store_one(loop, spool, message));
      queued.insert(message.id);
    }
  }
  REQUIRE(disk.fill());

  std::string late_id;
  {
    // No room for a new segment: the newest one takes the records instead.
    Spool spool(loop, spool_options(directory, loop));
    RecoveryReport report = spool.open();
    REQUIRE_FALSE(report.error);
    CHECK(ids_of(report) == queued);
    CHECK(segment_count(directory) == 1);
    // Deliveries are still recorded: their records fit in the headroom the
    // segment kept allocated.
    CHECK_FALSE(remove_one(loop, spool, *queued.begin()));
    queued.erase(queued.begin());
    // A message that does not fit fails with an out-of-space error...
    const QueuedMessage refused = message_of(spool, loop.now(), large);
    const std::error_code error = store_one(loop, spool, refused);
    CHECK(is_out_of_space(error));
    CHECK_FALSE(spool.contains(refused.id));
    // ...and once space returns the spool takes messages and removals again,
    // with no restart.
    disk.make_room();
    const QueuedMessage late = message_of(spool, loop.now(), large);
    CHECK_FALSE(store_one(loop, spool, late));
    late_id = late.id;
    CHECK_FALSE(remove_one(loop, spool, *queued.begin()));
    queued.erase(queued.begin());
    queued.insert(late_id);
    REQUIRE(loop.run_until([&] { return spool.requests_in_flight() == 0; }));
  }
  Spool spool(loop, spool_options(directory, loop));
  RecoveryReport report = spool.open();
  REQUIRE_FALSE(report.error);
  CHECK(ids_of(report) == queued);
  CHECK(report.torn_tails_discarded == 0);
  CHECK(report.files_quarantined == 0);
}

TEST_CASE("spool starts on a full file system with nothing in it", "[queue][full_disk]") {
  SmallFileSystem disk(512);
  if (!disk.mounted()) {
    WARN("skipped: " << disk.why_not());
    return;
  }
  const fs::path directory = disk.path() / "spool";
  fs::create_directories(directory / "segments");
  fs::create_directories(directory / "quarantine");
  REQUIRE(disk.fill());
  ManualEventLoop loop;
  std::string id;
  {
    Spool spool(loop, spool_options(directory, loop));
    RecoveryReport report = spool.open();
    REQUIRE_FALSE(report.error);
    CHECK(report.messages.empty());
    CHECK(segment_count(directory) == 0);
    CHECK(is_out_of_space(store_one(loop, spool, message_of(spool, loop.now(), 100))));
    disk.make_room();
    const QueuedMessage message = message_of(spool, loop.now(), 100);
    CHECK_FALSE(store_one(loop, spool, message));
    id = message.id;
    CHECK(segment_count(directory) == 1);
  }
  Spool spool(loop, spool_options(directory, loop));
  RecoveryReport report = spool.open();
  REQUIRE_FALSE(report.error);
  CHECK(ids_of(report) == std::set<std::string>{id});
}

TEST_CASE("spool: a write that fails for space keeps the segment, cut back, for later writes",
          "[queue][full_disk]") {
  SmallFileSystem disk(1024);
  if (!disk.mounted()) {
    WARN("skipped: " << disk.why_not());
    return;
  }
  const fs::path directory = disk.path() / "spool";
  ManualEventLoop loop;
  std::set<std::string> stored;
  {
    Spool spool(loop, spool_options(directory, loop));
    REQUIRE_FALSE(spool.open().error);
    QueuedMessage first = message_of(spool, loop.now(), 2000);
    REQUIRE_FALSE(store_one(loop, spool, first));
    stored.insert(first.id);
    const auto size_before = fs::file_size(directory / "segments" / segment_file_name(1));
    REQUIRE(disk.fill());
    CHECK(is_out_of_space(store_one(loop, spool, message_of(spool, loop.now(), large))));
    // Nothing of the failed record is left behind.
    CHECK(fs::file_size(directory / "segments" / segment_file_name(1)) == size_before);
    disk.make_room();
    QueuedMessage second = message_of(spool, loop.now(), large);
    REQUIRE_FALSE(store_one(loop, spool, second));
    stored.insert(second.id);
    // Still the same segment: a space failure is no reason to leave it.
    CHECK(segment_count(directory) == 1);
    REQUIRE(loop.run_until([&] { return spool.requests_in_flight() == 0; }));
  }
  Spool spool(loop, spool_options(directory, loop));
  RecoveryReport report = spool.open();
  REQUIRE_FALSE(report.error);
  CHECK(ids_of(report) == stored);
  CHECK(report.torn_tails_discarded == 0);
}
