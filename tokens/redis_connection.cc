// See redis_connection.h.
#include "tokens/redis_connection.h"

#include <hiredis/hiredis.h>
#include <pthread.h>
#include <signal.h>
#include <sys/time.h>

#include <algorithm>

#include "tokens/redis_context.h"
#include "tokens/token_store.h"

namespace stokend::tokens {
namespace {

// hiredis writes with write(2): a connection Redis closed raises SIGPIPE,
// which kills a process that does not ignore it (stokenctl, the tests; the
// daemon ignores it). While a guard lives, SIGPIPE is blocked in this
// thread; one it caused is taken back before the old mask returns, so the
// write fails with EPIPE, which the caller reports as an outage.
class SigpipeGuard {
 public:
  SigpipeGuard() {
    sigemptyset(&pipe_);
    sigaddset(&pipe_, SIGPIPE);
    sigset_t pending;
    sigpending(&pending);
    already_pending_ = sigismember(&pending, SIGPIPE) == 1;
    pthread_sigmask(SIG_BLOCK, &pipe_, &previous_);
  }
  ~SigpipeGuard() {
    if (!already_pending_) {
      sigset_t pending;
      sigpending(&pending);
      if (sigismember(&pending, SIGPIPE) == 1) {
        const timespec none{0, 0};
        sigtimedwait(&pipe_, nullptr, &none);
      }
    }
    pthread_sigmask(SIG_SETMASK, &previous_, nullptr);
  }
  SigpipeGuard(const SigpipeGuard&) = delete;
  SigpipeGuard& operator=(const SigpipeGuard&) = delete;

 private:
  sigset_t pipe_{};
  sigset_t previous_{};
  bool already_pending_ = false;
};

}  // namespace

void RedisConnections::ReplyFree::operator()(redisReply* reply) const { freeReplyObject(reply); }

void RedisConnections::ContextFree::operator()(redisContext* context) const { redisFree(context); }

RedisConnections::RedisConnections(Options options) : options_(std::move(options)) {}

RedisConnections::~RedisConnections() = default;

void RedisConnections::fail(const char* what, const std::string& error) const {
  throw TokenStoreError(describe() + ": " + what + ": " + error);
}

void RedisConnections::failed(const std::string& error) {
  std::lock_guard lock(mutex_);
  // Every pooled connection went to the same server: after a network
  // failure they are most likely all dead (a restart closes them all).
  idle_.clear();
  retry_delay_ = retry_delay_.count() == 0 ? options_.min_retry_delay
                                           : std::min(retry_delay_ * 2, options_.max_retry_delay);
  retry_after_ = std::chrono::steady_clock::now() + retry_delay_;
  last_error_ = error;
}

RedisConnections::Connection RedisConnections::take() {
  {
    std::lock_guard lock(mutex_);
    const auto now = std::chrono::steady_clock::now();
    if (now < retry_after_) {
      const auto wait =
          std::chrono::duration_cast<std::chrono::milliseconds>(retry_after_ - now).count();
      throw TokenStoreError(describe() + ": unavailable (" + last_error_ + "); next attempt in " +
                            std::to_string(wait) + " ms");
    }
    if (!idle_.empty()) {
      Connection connection = std::move(idle_.back());
      idle_.pop_back();
      return connection;
    }
  }
  return connect();
}

RedisConnections::Connection RedisConnections::connect() {
  const timeval connect_timeout = timeval_of(options_.connect_timeout);
  const RedisEndpoint& endpoint = options_.endpoint;
  Connection connection(
      endpoint.unix_socket()
          ? redisConnectUnixWithTimeout(endpoint.socket_path.c_str(), connect_timeout)
          : redisConnectWithTimeout(endpoint.host.c_str(), endpoint.port, connect_timeout));
  auto give_up = [&](const std::string& error) {
    failed(error);
    fail("cannot connect", error);
  };
  if (!connection || connection->err) give_up(context_error(connection.get()));
  if (redisSetTimeout(connection.get(), timeval_of(options_.command_timeout)) != REDIS_OK) {
    give_up("cannot set the command timeout");
  }
  if (!endpoint.unix_socket()) redisEnableKeepAlive(connection.get());

  // AUTH, then SELECT: both must succeed before the connection is used.
  auto setup = [&](const std::vector<std::string_view>& words, const char* what) {
    std::vector<const char*> argv;
    std::vector<std::size_t> lengths;
    for (auto word : words) {
      argv.push_back(word.data());
      lengths.push_back(word.size());
    }
    Reply reply(static_cast<redisReply*>(redisCommandArgv(
        connection.get(), static_cast<int>(argv.size()), argv.data(), lengths.data())));
    if (!reply) give_up(std::string(what) + ": " + context_error(connection.get()));
    if (reply->type == REDIS_REPLY_ERROR) {
      // A wrong password or database is a configuration error, not an
      // outage, but retrying later does no harm and keeps one code path.
      give_up(std::string(what) + ": " + std::string(reply->str, reply->len));
    }
  };
  if (!options_.password.empty()) setup({"AUTH", options_.password}, "AUTH refused");
  if (endpoint.database != 0) {
    const std::string database = std::to_string(endpoint.database);
    setup({"SELECT", database}, "SELECT refused");
  }
  return connection;
}

void RedisConnections::give_back(Connection connection) {
  std::lock_guard lock(mutex_);
  retry_delay_ = std::chrono::milliseconds(0);
  if (idle_.size() < options_.max_idle) idle_.push_back(std::move(connection));
}

RedisConnections::Reply RedisConnections::command(const std::vector<std::string_view>& words,
                                                  const char* what) {
  auto replies = pipeline({words}, what);
  return std::move(replies.front());
}

std::vector<RedisConnections::Reply> RedisConnections::pipeline(
    const std::vector<std::vector<std::string_view>>& commands, const char* what) {
  // A pooled connection may have died since its last use (Redis restarted,
  // or closed it as idle): one more try on a new connection. The writes of
  // the token store are idempotent, so a command that ran before its reply
  // was lost does no harm when it runs again.
  const SigpipeGuard no_sigpipe;
  for (int attempt = 0;; ++attempt) {
    Connection connection = take();
    std::vector<Reply> replies;
    bool sent = true;
    for (const auto& words : commands) {
      std::vector<const char*> argv;
      std::vector<std::size_t> lengths;
      for (auto word : words) {
        argv.push_back(word.data());
        lengths.push_back(word.size());
      }
      if (redisAppendCommandArgv(connection.get(), static_cast<int>(argv.size()), argv.data(),
                                 lengths.data()) != REDIS_OK) {
        sent = false;
        break;
      }
    }
    for (std::size_t i = 0; sent && i < commands.size(); ++i) {
      void* raw = nullptr;
      if (redisGetReply(connection.get(), &raw) != REDIS_OK || raw == nullptr) {
        sent = false;
        break;
      }
      replies.emplace_back(static_cast<redisReply*>(raw));
    }
    if (!sent) {
      const std::string error = context_error(connection.get());
      const bool timed_out = error == "no answer within the command timeout";
      if (attempt == 0 && !timed_out) {
        std::lock_guard lock(mutex_);
        idle_.clear();
        continue;
      }
      failed(error);
      fail(what, error);
    }
    give_back(std::move(connection));
    for (const auto& reply : replies) {
      if (reply->type == REDIS_REPLY_ERROR) fail(what, std::string(reply->str, reply->len));
    }
    return replies;
  }
}

}  // namespace stokend::tokens
