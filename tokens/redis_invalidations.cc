// See redis_invalidations.h.
#include "tokens/redis_invalidations.h"

#include <hiredis/hiredis.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <spdlog/spdlog.h>
#include <sys/eventfd.h>
#include <sys/time.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdint>
#include <memory>
#include <string_view>
#include <vector>

#include "tokens/redis_context.h"
#include "tokens/token_store.h"

namespace stokend::tokens {
namespace {

using Clock = std::chrono::steady_clock;

struct ContextFree {
  void operator()(redisContext* context) const { redisFree(context); }
};
struct ReplyFree {
  void operator()(redisReply* reply) const { freeReplyObject(reply); }
};
using Context = std::unique_ptr<redisContext, ContextFree>;
using Reply = std::unique_ptr<redisReply, ReplyFree>;

std::string_view text_of(const redisReply* reply) {
  if (reply == nullptr || reply->str == nullptr) return {};
  return {reply->str, reply->len};
}

// A blocking command during set-up (AUTH, SUBSCRIBE), bounded by the
// socket timeouts; returns the error, empty on success.
std::string setup_command(redisContext* context, const std::vector<std::string_view>& words,
                          Reply& reply) {
  std::vector<const char*> argv;
  std::vector<std::size_t> lengths;
  for (auto word : words) {
    argv.push_back(word.data());
    lengths.push_back(word.size());
  }
  reply.reset(static_cast<redisReply*>(
      redisCommandArgv(context, static_cast<int>(argv.size()), argv.data(), lengths.data())));
  if (!reply) return context_error(context);
  if (reply->type == REDIS_REPLY_ERROR) return std::string(text_of(reply.get()));
  return {};
}

}  // namespace

RedisInvalidations::RedisInvalidations(Options options, VerificationCache& cache)
    : options_(std::move(options)), cache_(cache), stop_(::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK)) {
  if (!stop_.valid()) throw TokenStoreError("cannot create an eventfd for the Redis listener");
  thread_ = std::thread([this] { run(); });
}

RedisInvalidations::~RedisInvalidations() {
  const std::uint64_t one = 1;
  // An eventfd far below its maximum: the write cannot fail.
  [[maybe_unused]] const auto written = ::write(stop_.get(), &one, sizeof one);
  if (thread_.joinable()) thread_.join();
  cache_.set_stale();
}

bool RedisInvalidations::wait_for_stop(std::chrono::milliseconds delay) const {
  pollfd stop{stop_.get(), POLLIN, 0};
  return ::poll(&stop, 1, static_cast<int>(delay.count())) > 0;
}

void RedisInvalidations::run() {
  // No signal is for this thread: the daemon's handlers run elsewhere, and a
  // write to a connection Redis closed must fail with EPIPE, not raise
  // SIGPIPE in a process that does not ignore it (stokenctl, the tests).
  sigset_t all;
  sigfillset(&all);
  pthread_sigmask(SIG_BLOCK, &all, nullptr);

  const std::string where = "redis " + options_.endpoint.describe();
  std::chrono::milliseconds delay{0};
  bool lost = false;  // a loss was logged, and no subscription since
  for (;;) {
    bool subscribed = false;
    const std::string error = subscribe_once(subscribed);
    if (subscribed) {
      delay = std::chrono::milliseconds(0);
      lost = false;
    }
    if (error.empty()) return;  // asked to stop
    cache_.set_stale();
    if (!lost) {
      spdlog::warn(
          "token store: {}: change notifications lost ({}); verifications read Redis until "
          "they are back",
          where, error);
      lost = true;
    }
    delay = delay.count() == 0 ? options_.min_retry_delay
                               : std::min(delay * 2, options_.max_retry_delay);
    if (wait_for_stop(delay)) return;
  }
}

std::string RedisInvalidations::subscribe_once(bool& subscribed) {
  const RedisEndpoint& endpoint = options_.endpoint;
  const timeval deadline = timeval_of(options_.connect_timeout);
  Context context(endpoint.unix_socket()
                      ? redisConnectUnixWithTimeout(endpoint.socket_path.c_str(), deadline)
                      : redisConnectWithTimeout(endpoint.host.c_str(), endpoint.port, deadline));
  if (!context || context->err) return "cannot connect: " + context_error(context.get());
  // Set-up and PINGs are small writes: the same deadline bounds them.
  if (redisSetTimeout(context.get(), deadline) != REDIS_OK) return "cannot set the timeout";
  if (!endpoint.unix_socket()) redisEnableKeepAlive(context.get());
  Reply reply;
  if (!options_.password.empty()) {
    if (auto error = setup_command(context.get(), {"AUTH", options_.password}, reply);
        !error.empty()) {
      return "AUTH refused: " + error;
    }
  }
  if (auto error = setup_command(context.get(), {"SUBSCRIBE", options_.channel}, reply);
      !error.empty()) {
    return "SUBSCRIBE failed: " + error;
  }
  // From here on every write is announced to us: start trusting the cache
  // (emptied, since what came before was not).
  cache_.set_live();
  subscribed = true;
  spdlog::info("token store: redis {}: listening for changes on {}", endpoint.describe(),
               options_.channel);

  auto last_heard = Clock::now();
  auto next_ping = last_heard + options_.ping_interval;
  for (;;) {
    // Everything already read: messages, PONGs.
    for (;;) {
      void* raw = nullptr;
      if (redisGetReplyFromReader(context.get(), &raw) != REDIS_OK) {
        return "bad reply: " + context_error(context.get());
      }
      if (raw == nullptr) break;
      const Reply message(static_cast<redisReply*>(raw));
      // ["message", channel, payload]; ["pong", ""] answers our PING.
      if (message->type == REDIS_REPLY_ARRAY && message->elements == 3 &&
          text_of(message->element[0]) == "message") {
        cache_.invalidate(text_of(message->element[2]));
      }
    }
    const auto now = Clock::now();
    if (now - last_heard > options_.silence_limit) {
      return "no answer for " + std::to_string(options_.silence_limit.count()) + " ms";
    }
    if (now >= next_ping) {
      if (redisAppendCommand(context.get(), "PING") != REDIS_OK) {
        return "cannot send PING: " + context_error(context.get());
      }
      int done = 0;
      while (!done) {
        if (redisBufferWrite(context.get(), &done) != REDIS_OK) {
          return "cannot send PING: " + context_error(context.get());
        }
      }
      next_ping = now + options_.ping_interval;
    }
    const auto wake = std::min(next_ping, last_heard + options_.silence_limit);
    const auto timeout =
        std::chrono::duration_cast<std::chrono::milliseconds>(wake - Clock::now()).count() + 1;
    pollfd fds[2] = {{context->fd, POLLIN, 0}, {stop_.get(), POLLIN, 0}};
    const int ready = ::poll(fds, 2, static_cast<int>(std::max<std::int64_t>(timeout, 0)));
    if (ready < 0 && errno != EINTR) return "poll failed";
    if (ready <= 0) continue;
    if (fds[1].revents != 0) return {};
    if (fds[0].revents != 0) {
      if (redisBufferRead(context.get()) != REDIS_OK) return context_error(context.get());
      last_heard = Clock::now();
    }
  }
}

}  // namespace stokend::tokens
