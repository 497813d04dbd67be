// Unit tests for the durable-write helper (common/durable_file.h).
#include "common/durable_file.h"

#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <catch2/catch.hpp>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "tests/support/temporary_directory.h"

using stokend::testing::names_in;
using stokend::testing::TemporaryDirectory;

namespace fs = std::filesystem;
using namespace stokend;

TEST_CASE("durable write_file writes the concatenated parts exactly", "[durable]") {
  TemporaryDirectory directory;
  fs::create_directory(directory.path() / "tmp");
  fs::create_directory(directory.path() / "new");
  const std::string binary("a\0b\r\n\xff", 6);
  const std::string large(3 * 1024 * 1024 + 7, 'x');
  const std::vector<std::string_view> parts = {"Received: x\r\n", "", binary, large};

  const auto result = durable::write_file(directory.path() / "tmp" / "m1",
                                          directory.path() / "new" / "m1", parts, 0600);
  REQUIRE(result);
  CHECK(result.step.empty());
  CHECK(stokend::testing::read_whole_file(directory.path() / "new" / "m1") ==
        std::string("Received: x\r\n") + binary + large);
  CHECK(names_in(directory.path() / "tmp").empty());

  struct stat status {};
  REQUIRE(::stat((directory.path() / "new" / "m1").c_str(), &status) == 0);
  CHECK((status.st_mode & 0077) == 0);
}

TEST_CASE("durable write_file handles many parts (more than one writev)", "[durable]") {
  TemporaryDirectory directory;
  std::vector<std::string> storage;
  for (int i = 0; i < 5000; ++i) storage.push_back(std::to_string(i) + ",");
  const std::vector<std::string_view> parts(storage.begin(), storage.end());
  std::string expected;
  for (const auto& part : storage) expected += part;

  REQUIRE(durable::write_file(directory.path() / "t", directory.path() / "f", parts));
  CHECK(stokend::testing::read_whole_file(directory.path() / "f") == expected);
  CHECK(names_in(directory.path()) == std::vector<std::string>{"f"});
}

TEST_CASE("durable write_file with an empty message creates an empty file", "[durable]") {
  TemporaryDirectory directory;
  REQUIRE(durable::write_file(directory.path() / "t", directory.path() / "f", {}));
  CHECK(fs::file_size(directory.path() / "f") == 0);
}

TEST_CASE("durable write_file refuses an existing temporary file and leaves it alone",
          "[durable]") {
  TemporaryDirectory directory;
  { std::ofstream(directory.path() / "t") << "someone else's"; }
  const std::string_view parts[] = {"new"};
  const auto result = durable::write_file(directory.path() / "t", directory.path() / "f", parts);
  CHECK_FALSE(result);
  CHECK(result.step == "open");
  CHECK(result.error == std::errc::file_exists);
  CHECK(stokend::testing::read_whole_file(directory.path() / "t") == "someone else's");
  CHECK_FALSE(fs::exists(directory.path() / "f"));
}

TEST_CASE("durable write_file fails cleanly when a folder is missing", "[durable]") {
  TemporaryDirectory directory;
  const std::string_view parts[] = {"data"};

  SECTION("temporary folder missing: open fails") {
    const auto result =
        durable::write_file(directory.path() / "missing" / "t", directory.path() / "f", parts);
    CHECK_FALSE(result);
    CHECK(result.step == "open");
    CHECK(result.error == std::errc::no_such_file_or_directory);
  }
  SECTION("final folder missing: rename fails and the temporary file is removed") {
    const auto result =
        durable::write_file(directory.path() / "t", directory.path() / "missing" / "f", parts);
    CHECK_FALSE(result);
    CHECK(result.step == "rename");
    CHECK(result.error == std::errc::no_such_file_or_directory);
  }
  CHECK(names_in(directory.path()).empty());
}

TEST_CASE("durable replace_file creates and atomically overwrites", "[durable]") {
  TemporaryDirectory directory;
  const fs::path target = directory.path() / "users";

  REQUIRE(durable::replace_file(target, "first version\n"));
  CHECK(stokend::testing::read_whole_file(target) == "first version\n");
  REQUIRE(durable::replace_file(target, "second\n"));
  CHECK(stokend::testing::read_whole_file(target) == "second\n");
  CHECK(names_in(directory.path()) == std::vector<std::string>{"users"});
}

TEST_CASE("durable replace_file: readers see the old or the new file, never a mix", "[durable]") {
  TemporaryDirectory directory;
  const fs::path target = directory.path() / "secrets";
  const std::string old_contents(64 * 1024, 'o');
  const std::string new_contents(64 * 1024, 'n');
  REQUIRE(durable::replace_file(target, old_contents));

  std::atomic<bool> done{false};
  std::atomic<int> torn{0};
  std::thread reader([&] {
    while (!done) {
      const std::string seen = stokend::testing::read_whole_file(target);
      if (seen != old_contents && seen != new_contents) ++torn;
    }
  });
  for (int i = 0; i < 20; ++i) {
    REQUIRE(durable::replace_file(target, i % 2 == 0 ? new_contents : old_contents));
  }
  done = true;
  reader.join();
  CHECK(torn == 0);
  CHECK(names_in(directory.path()) == std::vector<std::string>{"secrets"});
}

TEST_CASE("durable replace_file into a missing folder leaves nothing", "[durable]") {
  TemporaryDirectory directory;
  const auto result = durable::replace_file(directory.path() / "nope" / "file", "x");
  CHECK_FALSE(result);
  CHECK(result.step == "open");
  CHECK(names_in(directory.path()).empty());
}

TEST_CASE("durable replace_file from several threads leaves one complete file", "[durable]") {
  TemporaryDirectory directory;
  const fs::path target = directory.path() / "spool-entry";
  std::atomic<int> failures{0};  // Catch assertions are not thread-safe
  std::vector<std::thread> writers;
  for (int t = 0; t < 8; ++t) {
    writers.emplace_back([&, t] {
      for (int i = 0; i < 10; ++i) {
        if (!durable::replace_file(target, std::string(1000, static_cast<char>('a' + t)))) {
          ++failures;
        }
      }
    });
  }
  for (auto& writer : writers) writer.join();
  CHECK(failures == 0);
  const std::string contents = stokend::testing::read_whole_file(target);
  REQUIRE(contents.size() == 1000);
  CHECK(contents == std::string(1000, contents[0]));
  CHECK(names_in(directory.path()) == std::vector<std::string>{"spool-entry"});
}

TEST_CASE("durable make_directories creates missing parents with mode 0700", "[durable]") {
  TemporaryDirectory directory;
  const fs::path deep = directory.path() / "a" / "b" / "c";
  REQUIRE_FALSE(durable::make_directories(deep));
  CHECK(fs::is_directory(deep));
  for (const fs::path& folder : {directory.path() / "a", directory.path() / "a" / "b", deep}) {
    struct stat status {};
    REQUIRE(::stat(folder.c_str(), &status) == 0);
    CHECK((status.st_mode & 0777) == 0700);
  }
  // Existing folders, and a trailing separator, are fine.
  CHECK_FALSE(durable::make_directories(deep));
  CHECK_FALSE(durable::make_directories(deep.string() + "/"));
}

TEST_CASE("durable make_directories refuses to go through a regular file", "[durable]") {
  TemporaryDirectory directory;
  { std::ofstream(directory.path() / "file") << "x"; }
  CHECK(durable::make_directories(directory.path() / "file") == std::errc::not_a_directory);
  CHECK(durable::make_directories(directory.path() / "file" / "sub"));
}

TEST_CASE("durable sync_directory reports a missing folder", "[durable]") {
  TemporaryDirectory directory;
  CHECK_FALSE(durable::sync_directory(directory.path()));
  CHECK(durable::sync_directory(directory.path() / "missing") ==
        std::errc::no_such_file_or_directory);
}

TEST_CASE("durable writes give new files and folders their ownership and exact mode", "[durable]") {
  TemporaryDirectory directory;
  // A umask that would strip the group bits the modes below ask for.
  const mode_t previous_umask = ::umask(077);
  durable::Ownership ownership;
  ownership.user = ::geteuid();  // any process may give a file to itself
  ownership.group = ::getegid();
  ownership.mode = 02750;
  const fs::path folder = directory.path() / "a" / "b";
  const std::error_code made = durable::make_directories(folder, ownership);
  ownership.mode = 0640;
  const std::string_view parts[] = {"x"};
  const auto written =
      durable::write_file(folder / "tmp-file", folder / "file", parts, 0600, ownership);
  ::umask(previous_umask);
  REQUIRE_FALSE(made);
  REQUIRE(written);
  for (const fs::path& created : {directory.path() / "a", folder}) {
    struct stat status {};
    REQUIRE(::stat(created.c_str(), &status) == 0);
    CHECK((status.st_mode & 07777) == 02750);
    CHECK(status.st_uid == ::geteuid());
    CHECK(status.st_gid == ::getegid());
  }
  struct stat status {};
  REQUIRE(::stat((folder / "file").c_str(), &status) == 0);
  CHECK((status.st_mode & 07777) == 0640);
  // A folder that exists keeps its mode.
  fs::permissions(folder, fs::perms::owner_all);
  ownership.mode = 0755;
  REQUIRE_FALSE(durable::make_directories(folder, ownership));
  REQUIRE(::stat(folder.c_str(), &status) == 0);
  CHECK((status.st_mode & 07777) == 0700);
}
