// Unit tests for the spool lock (queue/spool_lock.h): one holder at a time,
// a refusal that names the holder, and release when the holder goes.
#include <fcntl.h>
#include <sys/file.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <filesystem>
#include <string>

#include "queue/spool_lock.h"
#include "tests/support/temporary_directory.h"

using stokend::testing::read_whole_file;
using stokend::testing::TemporaryDirectory;
using stokend::testing::write_whole_file;
using namespace stokend;
using namespace stokend::queue;

TEST_CASE("spool lock: the holder writes its PID into the lock file", "[spool_lock]") {
  TemporaryDirectory spool;
  SpoolLock lock;
  REQUIRE(lock.acquire(spool.path()) == "");
  CHECK(lock.held());
  CHECK(read_whole_file(spool.path() / spool_lock_file_name) == std::to_string(::getpid()) + "\n");
}

TEST_CASE("spool lock: a second lock attempt fails and names the holder's PID", "[spool_lock]") {
  TemporaryDirectory spool;
  SpoolLock first;
  REQUIRE(first.acquire(spool.path()) == "");
  // A separate open file description, as a second process would have: flock
  // refuses it even within this process.
  SpoolLock second;
  const std::string error = second.acquire(spool.path());
  CHECK_FALSE(second.held());
  CHECK(error.find("in use by another stokend") != std::string::npos);
  CHECK(error.find("(PID " + std::to_string(::getpid()) + ",") != std::string::npos);
  CHECK(error.find(spool.path().string()) != std::string::npos);
  // The refusal leaves the holder's PID in place.
  CHECK(read_whole_file(spool.path() / spool_lock_file_name) == std::to_string(::getpid()) + "\n");
}

TEST_CASE("spool lock: a holder whose PID is unreadable is still refused", "[spool_lock]") {
  TemporaryDirectory spool;
  const auto path = spool.path() / spool_lock_file_name;
  // Another holder that could not write its PID (a full file system).
  stokend::UniqueFd other(::open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0600));
  REQUIRE(other.valid());
  REQUIRE(::flock(other.get(), LOCK_EX | LOCK_NB) == 0);
  SpoolLock lock;
  const std::string error = lock.acquire(spool.path());
  CHECK_FALSE(lock.held());
  CHECK(error.find("(PID unknown,") != std::string::npos);
}

TEST_CASE("spool lock: released when the holder goes; a stale file does not block",
          "[spool_lock]") {
  TemporaryDirectory spool;
  // A lock file left by a holder that died (longer PID than ours, too).
  write_whole_file(spool.path() / spool_lock_file_name, "123456789012\n");
  {
    SpoolLock first;
    REQUIRE(first.acquire(spool.path()) == "");
    CHECK(read_whole_file(spool.path() / spool_lock_file_name) ==
          std::to_string(::getpid()) + "\n");
  }
  SpoolLock again;
  CHECK(again.acquire(spool.path()) == "");
  CHECK(again.held());
}

TEST_CASE("spool lock: a missing spool folder is a clear error", "[spool_lock]") {
  TemporaryDirectory spool;
  SpoolLock lock;
  const std::string error = lock.acquire(spool.path() / "missing");
  CHECK_FALSE(lock.held());
  CHECK(error.find("cannot open the spool lock file") != std::string::npos);
  CHECK(error.find("No such file or directory") != std::string::npos);
}
