// Unit tests for the queue's libevent adapter (queue/libevent_loop.h).
#include <catch2/catch.hpp>
#include <chrono>
#include <memory>
#include <thread>
#include <vector>

#include "queue/libevent_loop.h"
#include "tests/support/test_loop.h"

using namespace stokend;
using namespace stokend::queue;
using namespace std::chrono_literals;
// As the daemon does: event_active from other threads.
using stokend::testing::new_thread_safe_base;

TEST_CASE("libevent loop runs tasks posted from other threads", "[queue]") {
  auto base = new_thread_safe_base();
  REQUIRE(base);
  LibeventLoop loop(base.get());
  std::vector<int> ran;
  std::thread poster([&] {
    for (int i = 0; i < 3; ++i) loop.post([&ran, i] { ran.push_back(i); });
  });
  poster.join();
  // A timer ends the loop once the posted tasks had their turn.
  auto stop = loop.run_after(50ms, [&] { event_base_loopbreak(base.get()); });
  event_base_dispatch(base.get());
  CHECK(ran == std::vector<int>{0, 1, 2});
}

TEST_CASE("libevent loop timers fire in order and can be cancelled", "[queue]") {
  auto base = new_thread_safe_base();
  REQUIRE(base);
  LibeventLoop loop(base.get());
  std::vector<std::string> fired;
  auto late = loop.run_after(30ms, [&] { fired.push_back("late"); });
  auto early = loop.run_after(10ms, [&] { fired.push_back("early"); });
  auto cancelled = loop.run_after(20ms, [&] { fired.push_back("cancelled"); });
  cancelled.reset();
  // A timer may destroy itself from inside its own task.
  std::unique_ptr<EventLoop::Timer> self;
  self = loop.run_after(20ms, [&] {
    self.reset();
    fired.push_back("self");
  });
  auto stop = loop.run_after(60ms, [&] { event_base_loopbreak(base.get()); });
  event_base_dispatch(base.get());
  CHECK(fired == std::vector<std::string>{"early", "self", "late"});
}
