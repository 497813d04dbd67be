// A message quarantined by a milter (queue/queued_message.h Envelope::hold):
// the queue stores it held, reports it stored only once the hold is
// durable, never attempts it while held (a restart included), and delivers
// it once an administrator releases it (tests/support/queue_fixture.h).
#include <catch2/catch.hpp>
#include <string>

#include "queue/queue_manager.h"
#include "tests/support/queue_fixture.h"

using namespace stokend;
using namespace stokend::testing::queue_fixture;

TEST_CASE("a message stored held is not delivered until released, across a restart",
          "[queue][milter]") {
  QueueFixture queue;
  queue.start();
  Envelope held = envelope({"bob@example.net"});
  held.hold = true;
  const EnqueueResult stored = queue.enqueue(held, ordinary_mail());
  REQUIRE(stored);
  CHECK(queue.agent.calls.empty());
  const MessageSummary* summary = queue.find(stored.id);
  REQUIRE(summary);
  CHECK(summary->held);
  queue.advance(std::chrono::hours(1));
  CHECK(queue.agent.calls.empty());

  // The hold was durable before "stored": a restart keeps it.
  queue.restart();
  REQUIRE(queue.find(stored.id));
  CHECK(queue.find(stored.id)->held);
  CHECK(queue.agent.calls.empty());

  CHECK(queue.admin(&QueueManager::release, stored.id) == AdminOutcome::done);
  REQUIRE(queue.agent.calls.size() == 1);
  CHECK(*queue.agent.calls[0].message.data == ordinary_mail());  // read back from the spool
  queue.agent.answer(0, {delivered()});
  queue.settle();
  CHECK(queue.manager->list().empty());

  // An ordinary message next to it goes at once.
  queue.enqueue(envelope({"carol@example.net"}), ordinary_mail());
  CHECK(queue.agent.calls.size() == 2);
}
