// Unit tests for the removal of stale Maildir tmp/ files (mta/store/maildir_cleanup.h):
// old regular files in tmp/ go, everything else stays, links are never followed;
// at start, the daemon's own unfinished deliveries go whatever their age.
#include "mta/store/maildir_cleanup.h"

#include <fcntl.h>
#include <sys/stat.h>

#include <catch2/catch.hpp>
#include <chrono>
#include <filesystem>
#include <string>

#include "mta/store/maildir_layout.h"
#include "tests/support/temporary_directory.h"

using stokend::testing::TemporaryDirectory;
using stokend::testing::write_whole_file;

namespace fs = std::filesystem;
using namespace std::chrono_literals;
using stokend::store::remove_maildir_tmp_files_at_start;
using stokend::store::remove_stale_maildir_tmp_files;

namespace {

constexpr std::chrono::seconds max_age = 36h;

// Sets path's mtime (not following a link) to `age` before now.
void age_file(const fs::path& path, std::chrono::system_clock::time_point now,
              std::chrono::seconds age) {
  const auto when =
      std::chrono::duration_cast<std::chrono::seconds>((now - age).time_since_epoch());
  const timespec times[2] = {{when.count(), 0}, {when.count(), 0}};
  REQUIRE(::utimensat(AT_FDCWD, path.c_str(), times, AT_SYMLINK_NOFOLLOW) == 0);
}

// A small file at path, its mtime `age` before now.
void make_file(const fs::path& path, std::chrono::system_clock::time_point now,
               std::chrono::seconds age) {
  fs::create_directories(path.parent_path());
  write_whole_file(path, "message");
  age_file(path, now, age);
}

}  // namespace

TEST_CASE("stale tmp files go, fresh ones and new/ and cur/ stay", "[maildir_cleanup]") {
  TemporaryDirectory root;
  const auto now = std::chrono::system_clock::now();
  const fs::path alice = root.path() / "example.test" / "alice";
  const fs::path chats = alice / ".COI.Chats";
  make_file(alice / "tmp" / "old", now, 37h);
  make_file(alice / "tmp" / "recent", now, 35h);
  make_file(alice / "new" / "old-new", now, 100h);
  make_file(alice / "cur" / "old-cur:2,S", now, 100h);
  make_file(chats / "tmp" / "old-chat", now, 48h);
  make_file(chats / "tmp" / "recent-chat", now, 1h);
  make_file(chats / "new" / "old-chat-new", now, 100h);
  make_file(root.path() / "other.test" / "bob" / "tmp" / "old-bob", now, 40h);

  const auto result = remove_stale_maildir_tmp_files(root.path(), max_age, now);

  CHECK(result.removed == 3);
  CHECK(result.errors == 0);
  CHECK_FALSE(fs::exists(alice / "tmp" / "old"));
  CHECK_FALSE(fs::exists(chats / "tmp" / "old-chat"));
  CHECK_FALSE(fs::exists(root.path() / "other.test" / "bob" / "tmp" / "old-bob"));
  CHECK(fs::exists(alice / "tmp" / "recent"));
  CHECK(fs::exists(chats / "tmp" / "recent-chat"));
  CHECK(fs::exists(alice / "new" / "old-new"));
  CHECK(fs::exists(alice / "cur" / "old-cur:2,S"));
  CHECK(fs::exists(chats / "new" / "old-chat-new"));
  // The folders themselves stay, ready for the next delivery.
  CHECK(fs::is_directory(alice / "tmp"));
  CHECK(fs::is_directory(chats / "tmp"));
}

TEST_CASE("maildir cleanup never follows symbolic links", "[maildir_cleanup]") {
  TemporaryDirectory root;
  TemporaryDirectory elsewhere;
  const auto now = std::chrono::system_clock::now();
  // Old files outside the root, reachable only through links.
  const fs::path outside_tmp = elsewhere.path() / "mailbox" / "tmp";
  make_file(outside_tmp / "precious", now, 100h);
  make_file(elsewhere.path() / "domain" / "carol" / "tmp" / "precious", now, 100h);
  make_file(elsewhere.path() / "user" / "tmp" / "precious", now, 100h);
  make_file(elsewhere.path() / "target", now, 100h);

  const fs::path alice = root.path() / "example.test" / "alice";
  fs::create_directories(alice / "new");
  // tmp/ itself a link, a Maildir++ folder a link, a user a link, a domain a link.
  fs::create_directory_symlink(outside_tmp, alice / "tmp");
  fs::create_directory_symlink(elsewhere.path() / "mailbox", alice / ".Linked");
  fs::create_directory_symlink(elsewhere.path() / "user", root.path() / "example.test" / "dave");
  fs::create_directory_symlink(elsewhere.path() / "domain", root.path() / "linked.test");
  // An old link inside a real tmp/: neither it nor its target is removed.
  const fs::path bob_tmp = root.path() / "example.test" / "bob" / "tmp";
  fs::create_directories(bob_tmp);
  fs::create_symlink(elsewhere.path() / "target", bob_tmp / "link");
  age_file(bob_tmp / "link", now, 100h);

  const auto result = remove_stale_maildir_tmp_files(root.path(), max_age, now);

  CHECK(result.removed == 0);
  CHECK(result.errors == 0);
  CHECK(fs::exists(outside_tmp / "precious"));
  CHECK(fs::exists(elsewhere.path() / "domain" / "carol" / "tmp" / "precious"));
  CHECK(fs::exists(elsewhere.path() / "user" / "tmp" / "precious"));
  CHECK(fs::exists(elsewhere.path() / "target"));
  CHECK(fs::is_symlink(bob_tmp / "link"));
}

TEST_CASE("maildir cleanup of a missing or empty root removes nothing", "[maildir_cleanup]") {
  TemporaryDirectory root;
  const auto now = std::chrono::system_clock::now();
  CHECK(remove_stale_maildir_tmp_files(root.path() / "absent", max_age, now).removed == 0);
  CHECK(remove_stale_maildir_tmp_files(root.path() / "absent", max_age, now).errors == 0);
  // A user without tmp/ and a stray file where a domain would be are skipped.
  fs::create_directories(root.path() / "example.test" / "erin" / "new");
  write_whole_file(root.path() / "stray-file", "x");
  const auto result = remove_stale_maildir_tmp_files(root.path(), max_age, now);
  CHECK(result.removed == 0);
  CHECK(result.errors == 0);
  CHECK(fs::exists(root.path() / "stray-file"));
}

TEST_CASE(
    "at start our own unfinished deliveries go at any age, foreign tmp files keep the age rule",
    "[maildir_cleanup]") {
  TemporaryDirectory root;
  const auto now = std::chrono::system_clock::now();
  const fs::path alice = root.path() / "example.test" / "alice";
  const fs::path chats = alice / ".COI.Chats";
  const std::string ours =
      stokend::store::delivery_tmp_file_name("1765000000.M1P42Q7.mx.example.test,S=1024");
  make_file(alice / "tmp" / ours, now, 0s);
  make_file(chats / "tmp" / ours, now, 5s);
  // Dovecot's own names in a shared Maildir: one in the middle of being
  // written (fresh), one an orphan of its own crash (old).
  make_file(alice / "tmp" / "1765000000.M2P99.mx.example.test", now, 1s);
  make_file(alice / "tmp" / "1765000000.M3P99.mx.example.test", now, 40h);
  // Only the exact prefix marks our files; the prefix alone is no name.
  make_file(alice / "tmp" / "xstokend-delivery.1", now, 1s);
  make_file(alice / "tmp" / std::string(stokend::store::delivery_tmp_file_prefix), now, 1s);
  make_file(alice / "new" / ours, now, 0s);  // never touched outside tmp/

  SECTION("the periodic run leaves fresh files of ours alone") {
    const auto result = remove_stale_maildir_tmp_files(root.path(), max_age, now);
    CHECK(result.removed == 1);
    CHECK(result.unfinished_deliveries_removed == 0);
    CHECK(fs::exists(alice / "tmp" / ours));
    CHECK(fs::exists(chats / "tmp" / ours));
    CHECK_FALSE(fs::exists(alice / "tmp" / "1765000000.M3P99.mx.example.test"));
  }
  SECTION("the start-up run removes them and the old foreign one") {
    const auto result = remove_maildir_tmp_files_at_start(root.path(), max_age, now);
    CHECK(result.removed == 3);
    CHECK(result.unfinished_deliveries_removed == 2);
    CHECK(result.errors == 0);
    CHECK_FALSE(fs::exists(alice / "tmp" / ours));
    CHECK_FALSE(fs::exists(chats / "tmp" / ours));
    CHECK_FALSE(fs::exists(alice / "tmp" / "1765000000.M3P99.mx.example.test"));
    CHECK(fs::exists(alice / "tmp" / "1765000000.M2P99.mx.example.test"));
    CHECK(fs::exists(alice / "tmp" / "xstokend-delivery.1"));
    CHECK(fs::exists(alice / "tmp" / std::string(stokend::store::delivery_tmp_file_prefix)));
    CHECK(fs::exists(alice / "new" / ours));
  }
}

TEST_CASE("the start-up run never follows links either", "[maildir_cleanup]") {
  TemporaryDirectory root;
  TemporaryDirectory elsewhere;
  const auto now = std::chrono::system_clock::now();
  const std::string ours = stokend::store::delivery_tmp_file_name("1.M1P1Q1.host,S=1");
  make_file(elsewhere.path() / "tmp" / ours, now, 0s);
  make_file(elsewhere.path() / "target", now, 0s);
  const fs::path alice = root.path() / "example.test" / "alice";
  fs::create_directories(alice / "new");
  fs::create_directory_symlink(elsewhere.path() / "tmp", alice / "tmp");
  const fs::path bob_tmp = root.path() / "example.test" / "bob" / "tmp";
  fs::create_directories(bob_tmp);
  fs::create_symlink(elsewhere.path() / "target", bob_tmp / ours);

  const auto result = remove_maildir_tmp_files_at_start(root.path(), max_age, now);

  CHECK(result.removed == 0);
  CHECK(fs::exists(elsewhere.path() / "tmp" / ours));
  CHECK(fs::is_symlink(bob_tmp / ours));
  CHECK(fs::exists(elsewhere.path() / "target"));
}
