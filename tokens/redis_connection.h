// RedisConnections: the synchronous connections to Redis that the Redis
// token store (redis_token_store.h) sends its commands on, with a deadline
// on every network step and a back-off while Redis is unreachable.
//
// Why synchronous (hiredis's blocking API) and not an asynchronous client
// on the event loop: the TokenStore interface is synchronous and its
// callers already run it on worker threads (mta/work_runner.h); a blocking
// call with a deadline keeps the store a drop-in for SQLite.
//
// Deadlines: a connection attempt gives up after Options::connect_timeout,
// a command after Options::command_timeout (redisSetTimeout sets
// SO_RCVTIMEO/SO_SNDTIMEO on the socket). A call never waits longer than
// connect_timeout + command_timeout (x2 when a pooled connection turned out
// dead and a new one is tried).
//
// Back-off: when connecting or a command fails on the network, every call
// fails at once (without touching the network) for a while: 100 ms after the
// first failure, doubling up to Options::max_retry_delay. The first call
// after that tries again; a success ends the back-off. So an outage costs
// callers one deadline per retry, not one per call, and the store comes
// back by itself when Redis does.
//
// Thread safety: a mutex guards the pool of idle connections and the
// back-off state only; a call takes a connection out of the pool for the
// duration of its command, so threads talk to Redis in parallel (at most
// Options::max_idle connections are kept between calls).
//
// Contract: failures throw TokenStoreError naming the endpoint ("redis
// unix:/run/redis.sock: ..."). An error reply of Redis (-ERR, -NOAUTH,
// -READONLY, -MISCONF, ...) is a failure too; a "nil" reply is not. The
// password is sent with AUTH and never appears in an error.
#pragma once

#include <chrono>
#include <cstddef>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <vector>

#include "tokens/redis_url.h"

struct redisContext;
struct redisReply;

namespace stokend::tokens {

class RedisConnections {
 public:
  struct Options {
    RedisEndpoint endpoint;
    std::string password;  // empty: no AUTH
    std::chrono::milliseconds connect_timeout{1000};
    std::chrono::milliseconds command_timeout{1000};
    std::chrono::milliseconds min_retry_delay{100};
    std::chrono::milliseconds max_retry_delay{5000};
    std::size_t max_idle = 8;
  };

  struct ReplyFree {
    void operator()(redisReply* reply) const;
  };
  using Reply = std::unique_ptr<redisReply, ReplyFree>;

  explicit RedisConnections(Options options);
  ~RedisConnections();
  RedisConnections(const RedisConnections&) = delete;
  RedisConnections& operator=(const RedisConnections&) = delete;

  // Sends one command (its words, binary-safe) and returns the reply, never
  // null and never an error reply. `what` names the operation for errors.
  Reply command(const std::vector<std::string_view>& words, const char* what);
  // Several commands on one connection, sent together (a write and the WAIT
  // that must follow it on the same connection); one reply each.
  std::vector<Reply> pipeline(const std::vector<std::vector<std::string_view>>& commands,
                              const char* what);

  const RedisEndpoint& endpoint() const { return options_.endpoint; }
  std::string describe() const { return "redis " + options_.endpoint.describe(); }

 private:
  struct ContextFree {
    void operator()(redisContext* context) const;
  };
  using Connection = std::unique_ptr<redisContext, ContextFree>;

  Connection take();                      // idle or new; throws
  Connection connect();                   // throws
  void give_back(Connection connection);  // a healthy connection
  void failed(const std::string& error);  // starts or extends the back-off
  [[noreturn]] void fail(const char* what, const std::string& error) const;

  Options options_;
  std::mutex mutex_;
  std::vector<Connection> idle_;
  std::chrono::steady_clock::time_point retry_after_{};
  std::chrono::milliseconds retry_delay_{0};
  std::string last_error_;
};

}  // namespace stokend::tokens
