// Unit tests for the group commit writer (queue/group_commit.h): one commit
// per batch, jobs arriving while a batch is performed join its commit, a
// steady stream cannot put the commit off, completions in submission order.
#include <atomic>
#include <catch2/catch.hpp>
#include <chrono>
#include <condition_variable>
#include <functional>
#include <mutex>
#include <string>
#include <vector>

#include "queue/group_commit.h"
#include "tests/support/manual_event_loop.h"

using namespace stokend;
using namespace stokend::queue;
using namespace std::chrono_literals;

namespace {

// A one-shot signal between the test thread and the writer thread.
class Latch {
 public:
  void open() {
    {
      std::lock_guard lock(mutex_);
      open_ = true;
    }
    changed_.notify_all();
  }
  bool wait(std::chrono::milliseconds timeout = 10s) {
    std::unique_lock lock(mutex_);
    return changed_.wait_for(lock, timeout, [this] { return open_; });
  }

 private:
  std::mutex mutex_;
  std::condition_variable changed_;
  bool open_ = false;
};

}  // namespace

TEST_CASE("a job submitted while a batch is performed shares its commit", "[group_commit]") {
  ManualEventLoop loop;
  std::atomic<int> commits{0};
  std::atomic<int> performed_at_first_commit{-1};
  std::atomic<int> performed{0};
  GroupCommitter committer(loop, [&] {
    if (commits++ == 0) performed_at_first_commit = performed.load();
    return std::error_code{};
  });
  Latch first_running;
  Latch second_submitted;
  std::vector<std::string> completed;

  committer.submit(
      [&] {
        first_running.open();
        // The writer is busy with the first job when the second arrives.
        second_submitted.wait();
        ++performed;
      },
      [&](std::error_code error) {
        CHECK_FALSE(error);
        completed.push_back("first");
      });
  REQUIRE(first_running.wait());
  committer.submit([&] { ++performed; },
                   [&](std::error_code error) {
                     CHECK_FALSE(error);
                     completed.push_back("second");
                   });
  second_submitted.open();

  REQUIRE(loop.run_until([&] { return completed.size() == 2; }));
  CHECK(completed == std::vector<std::string>{"first", "second"});
  CHECK(commits == 1);
  CHECK(performed_at_first_commit == 2);
  const auto statistics = committer.statistics();
  CHECK(statistics.batches == 1);
  CHECK(statistics.jobs == 2);
  CHECK(statistics.largest_batch == 2);
}

TEST_CASE("a steady stream of jobs cannot put the commit off", "[group_commit]") {
  ManualEventLoop loop;
  constexpr int total = 12;
  std::atomic<int> performed{0};
  std::vector<int> performed_at_commit;  // writer thread only until joined
  std::mutex commits_mutex;
  GroupCommitter committer(loop, [&] {
    std::lock_guard lock(commits_mutex);
    performed_at_commit.push_back(performed.load());
    return std::error_code{};
  });
  std::atomic<int> completed{0};
  // Each job submits the next one while it is performed: there is always a
  // newcomer when the writer looks again.
  std::function<void()> perform = [&] {
    if (++performed < total) {
      committer.submit(perform, [&](std::error_code) { ++completed; });
    }
  };
  committer.submit(perform, [&](std::error_code) { ++completed; });

  REQUIRE(loop.run_until([&] { return completed == total; }));
  std::lock_guard lock(commits_mutex);
  REQUIRE(performed_at_commit.size() >= 2);
  // The first batch took its first job and joined max_join_rounds more.
  CHECK(performed_at_commit.front() == 1 + GroupCommitter::max_join_rounds);
  CHECK(performed_at_commit.back() == total);
}

TEST_CASE("every completion of a batch gets the commit's error, in order", "[group_commit]") {
  ManualEventLoop loop;
  std::atomic<bool> fail{true};
  GroupCommitter committer(loop, [&] {
    return fail ? std::make_error_code(std::errc::no_space_on_device) : std::error_code{};
  });
  std::vector<std::pair<int, std::error_code>> completed;
  Latch release;
  committer.submit([&] { release.wait(); },
                   [&](std::error_code error) { completed.emplace_back(0, error); });
  committer.submit({}, [&](std::error_code error) { completed.emplace_back(1, error); });
  release.open();
  REQUIRE(loop.run_until([&] { return completed.size() == 2; }));
  fail = false;
  committer.submit({}, [&](std::error_code error) { completed.emplace_back(2, error); });
  REQUIRE(loop.run_until([&] { return completed.size() == 3; }));
  CHECK(completed[0].first == 0);
  CHECK(completed[0].second == std::errc::no_space_on_device);
  CHECK(completed[1].first == 1);
  CHECK(completed[1].second == std::errc::no_space_on_device);
  CHECK(completed[2].first == 2);
  CHECK_FALSE(completed[2].second);
}
