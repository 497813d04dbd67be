// Unit tests for the spool's free-space monitor (queue/free_space.h): the
// reserve, a declared size, the cache, and a failed write refreshing it.
#include "queue/free_space.h"

#include <catch2/catch.hpp>
#include <cerrno>
#include <chrono>
#include <cstdint>
#include <filesystem>
#include <system_error>

#include "tests/support/temporary_directory.h"

using namespace stokend;
using namespace stokend::queue;
using namespace std::chrono_literals;

namespace {

// A file system whose free space the test sets, and a clock it moves.
struct FakeFileSystem {
  std::uint64_t available = 0;
  std::error_code error;
  int measurements = 0;
  std::chrono::steady_clock::time_point now{};

  FreeSpaceMonitor monitor(std::uint64_t reserve) {
    return FreeSpaceMonitor(
        "spool", reserve, 1s, FreeSpaceMonitor::Logging::quiet,
        [this](const std::filesystem::path&) {
          ++measurements;
          return FreeSpaceMonitor::Measurement{available, error};
        },
        [this] { return now; });
  }
};

}  // namespace

TEST_CASE("free space: refused under the reserve, accepted at and above it", "[free_space]") {
  FakeFileSystem disk;
  auto monitor = disk.monitor(1000);
  disk.available = 999;
  CHECK_FALSE(monitor.check().enough);
  CHECK(monitor.check().available == 999);
  disk.now += 1s;
  disk.available = 1000;
  CHECK(monitor.check().enough);
  disk.now += 1s;
  disk.available = 5000;
  CHECK(monitor.check().enough);
}

TEST_CASE("free space: a declared size must fit above the reserve", "[free_space]") {
  FakeFileSystem disk;
  auto monitor = disk.monitor(1000);
  disk.available = 3000;
  CHECK(monitor.check(2000).enough);
  CHECK_FALSE(monitor.check(2001).enough);
  // A size near the top of the range does not wrap around.
  CHECK_FALSE(monitor.check(UINT64_MAX).enough);
  // Without a reserve, only the size counts.
  FakeFileSystem bare;
  auto unreserved = bare.monitor(0);
  bare.available = 0;
  CHECK(unreserved.check().enough);
  CHECK_FALSE(unreserved.check(1).enough);
}

TEST_CASE("free space: measured at most once per refresh interval", "[free_space]") {
  FakeFileSystem disk;
  auto monitor = disk.monitor(1000);
  disk.available = 5000;
  CHECK(monitor.check().enough);
  CHECK(disk.measurements == 1);
  // The disk fills, but within the interval the cached answer stands.
  disk.available = 10;
  disk.now += 999ms;
  CHECK(monitor.check().enough);
  CHECK(disk.measurements == 1);
  disk.now += 1ms;
  CHECK_FALSE(monitor.check().enough);
  CHECK(disk.measurements == 2);
  // Space returns: noticed at the next refresh, without anything else.
  disk.available = 5000;
  disk.now += 1s;
  CHECK(monitor.check().enough);
  CHECK(disk.measurements == 3);
}

TEST_CASE("free space: a write that failed for space refreshes at once", "[free_space]") {
  FakeFileSystem disk;
  auto monitor = disk.monitor(1000);
  disk.available = 5000;
  CHECK(monitor.check().enough);
  disk.available = 0;
  monitor.report_out_of_space();
  CHECK_FALSE(monitor.check().enough);
  CHECK(disk.measurements == 2);
}

TEST_CASE("free space: a file system that cannot be measured is not refused", "[free_space]") {
  FakeFileSystem disk;
  auto monitor = disk.monitor(1000);
  disk.error = std::make_error_code(std::errc::io_error);
  CHECK(monitor.check().enough);
}

TEST_CASE("free space: statvfs measures a real folder", "[free_space]") {
  stokend::testing::TemporaryDirectory folder;
  const auto measured = measure_free_space(folder.path());
  CHECK_FALSE(measured.error);
  CHECK(measured.available > 0);
  const auto missing = measure_free_space(folder.path() / "missing");
  CHECK(missing.error == std::errc::no_such_file_or_directory);
}

TEST_CASE("free space: ENOSPC and EDQUOT are out of space, other errors are not", "[free_space]") {
  CHECK(is_out_of_space({ENOSPC, std::system_category()}));
  CHECK(is_out_of_space({EDQUOT, std::system_category()}));
  CHECK(is_out_of_space(std::make_error_code(std::errc::no_space_on_device)));
  CHECK_FALSE(is_out_of_space({EIO, std::system_category()}));
  CHECK_FALSE(is_out_of_space({}));
}
