// The connection pool against smtp-sink: reuse, the per-destination limit
// with queued requests, the idle timeout, and connection failures.
#include <catch2/catch.hpp>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "mta/client/connection_pool.h"
#include "tests/support/client_test_support.h"

using namespace stokend;
using namespace stokend::client;
using namespace client_test;

namespace {

ClientSettings pool_settings() {
  ClientSettings settings;
  settings.helo_name = "client.a.test";
  settings.timeouts.quit = 2s;
  return settings;
}

struct Acquired {
  std::shared_ptr<SmtpClient> connection;
  std::optional<Failure> failure;
  bool done = false;
};

std::shared_ptr<Acquired> acquire(ConnectionPool& pool, const Destination& destination) {
  auto acquired = std::make_shared<Acquired>();
  pool.acquire(destination,
               [acquired](std::shared_ptr<SmtpClient> connection, std::optional<Failure> failure) {
                 acquired->connection = std::move(connection);
                 acquired->failure = std::move(failure);
                 acquired->done = true;
               });
  return acquired;
}

TransactionResult send_one(TestLoop& loop, SmtpClient& connection) {
  Envelope envelope;
  envelope.sender = "sender@a.test";
  envelope.recipients = {"one@b.test"};
  std::optional<TransactionResult> result;
  connection.send_transaction(envelope,
                              std::make_shared<const std::string>("Subject: x\r\n\r\nx\r\n"),
                              [&](TransactionResult outcome) { result = std::move(outcome); });
  REQUIRE(loop.run_until([&] { return result.has_value(); }));
  return *result;
}

}  // namespace

TEST_CASE("the pool reuses a released connection", "[client]") {
  TestLoop loop;
  SmtpSink sink;
  ConnectionPool pool(loop.base(), pool_settings());
  auto destination = Destination::tcp(Protocol::smtp, "127.0.0.1", sink.port());
  std::string key = destination.key();

  auto first = acquire(pool, destination);
  REQUIRE(loop.run_until([&] { return first->done; }));
  REQUIRE(first->connection);
  CHECK(send_one(loop, *first->connection).all_delivered());
  pool.release(first->connection, true);
  CHECK(pool.idle_connections(key) == 1);

  auto second = acquire(pool, destination);
  CHECK_FALSE(second->done);  // never called back from inside acquire()
  REQUIRE(loop.run_until([&] { return second->done; }));
  CHECK(second->connection == first->connection);
  CHECK(pool.open_connections(key) == 1);
  CHECK(send_one(loop, *second->connection).all_delivered());
  CHECK(second->connection->transactions_completed() == 2);
  pool.release(second->connection, true);
}

TEST_CASE("the pool keeps to its per-destination limit and queues requests", "[client]") {
  TestLoop loop;
  SmtpSink sink;
  ClientSettings settings = pool_settings();
  settings.max_connections_per_destination = 2;
  ConnectionPool pool(loop.base(), settings);
  auto destination = Destination::tcp(Protocol::smtp, "127.0.0.1", sink.port());
  std::string key = destination.key();

  auto first = acquire(pool, destination);
  auto second = acquire(pool, destination);
  auto third = acquire(pool, destination);
  REQUIRE(loop.run_until([&] { return first->done && second->done; }));
  REQUIRE(first->connection);
  REQUIRE(second->connection);
  CHECK(first->connection != second->connection);
  loop.run_for(100ms);
  CHECK_FALSE(third->done);
  CHECK(pool.open_connections(key) == 2);
  CHECK(pool.waiting_requests(key) == 1);

  SECTION("a reusable release goes to the waiting request") {
    pool.release(first->connection, true);
    REQUIRE(loop.run_until([&] { return third->done; }));
    CHECK(third->connection == first->connection);
    CHECK(pool.open_connections(key) == 2);
  }
  SECTION("a broken release makes room for a new connection") {
    pool.release(first->connection, false);
    REQUIRE(loop.run_until([&] { return third->done; }));
    REQUIRE(third->connection);
    CHECK(third->connection != first->connection);
    CHECK(pool.open_connections(key) == 2);
  }
  CHECK(pool.waiting_requests(key) == 0);
  pool.release(second->connection, true);
  pool.release(third->connection, true);
}

TEST_CASE("an idle pooled connection is closed after the idle timeout", "[client]") {
  TestLoop loop;
  SmtpSink sink;
  ClientSettings settings = pool_settings();
  settings.idle_timeout = 200ms;
  ConnectionPool pool(loop.base(), settings);
  auto destination = Destination::tcp(Protocol::smtp, "127.0.0.1", sink.port());
  auto acquired = acquire(pool, destination);
  REQUIRE(loop.run_until([&] { return acquired->done; }));
  std::weak_ptr<SmtpClient> watched = acquired->connection;
  pool.release(std::move(acquired->connection), true);
  CHECK(pool.idle_connections(destination.key()) == 1);
  CHECK(loop.run_until([&] { return pool.open_connections(destination.key()) == 0; }, 3s));
  // QUIT answered, the connection is gone.
  CHECK(loop.run_until([&] { return watched.expired(); }, 3s));
}

TEST_CASE("a connection that carried its maximum is not reused", "[client]") {
  TestLoop loop;
  SmtpSink sink;
  ClientSettings settings = pool_settings();
  settings.max_transactions_per_connection = 1;
  ConnectionPool pool(loop.base(), settings);
  auto destination = Destination::tcp(Protocol::smtp, "127.0.0.1", sink.port());
  auto acquired = acquire(pool, destination);
  REQUIRE(loop.run_until([&] { return acquired->done; }));
  CHECK(send_one(loop, *acquired->connection).all_delivered());
  pool.release(acquired->connection, true);
  CHECK(pool.open_connections(destination.key()) == 0);
  CHECK(pool.idle_connections(destination.key()) == 0);
}

TEST_CASE("the pool reports a failed connection attempt to its requester", "[client]") {
  TestLoop loop;
  ConnectionPool pool(loop.base(), pool_settings());
  auto destination = Destination::tcp(Protocol::smtp, "127.0.0.1", free_loopback_port());
  auto acquired = acquire(pool, destination);
  REQUIRE(loop.run_until([&] { return acquired->done; }));
  CHECK_FALSE(acquired->connection);
  REQUIRE(acquired->failure);
  CHECK(acquired->failure->enhanced_code == "4.4.1");
  CHECK(pool.open_connections(destination.key()) == 0);
}

TEST_CASE("an idle connection the server closed is not handed out", "[client]") {
  TestLoop loop;
  auto sink = std::make_unique<SmtpSink>();
  ConnectionPool pool(loop.base(), pool_settings());
  auto destination = Destination::tcp(Protocol::smtp, "127.0.0.1", sink->port());
  auto acquired = acquire(pool, destination);
  REQUIRE(loop.run_until([&] { return acquired->done; }));
  std::shared_ptr<SmtpClient> stale = acquired->connection;
  pool.release(acquired->connection, true);
  sink.reset();  // the server goes away; the idle connection sees EOF
  REQUIRE(loop.run_until([&] { return stale->is_closed(); }, 3s));
  auto again = acquire(pool, destination);
  REQUIRE(loop.run_until([&] { return again->done; }));
  CHECK(again->connection == nullptr);  // a new attempt, refused
  CHECK(again->failure);
}
