// See redis_context.h.
#include "tokens/redis_context.h"

namespace stokend::tokens {

timeval timeval_of(std::chrono::milliseconds duration) {
  timeval value{};
  value.tv_sec = static_cast<time_t>(duration.count() / 1000);
  value.tv_usec = static_cast<suseconds_t>((duration.count() % 1000) * 1000);
  return value;
}

std::string context_error(const redisContext* context) {
  if (context == nullptr) return "cannot allocate a connection";
  if (context->errstr[0] == '\0') return "connection lost";
  std::string error = context->errstr;
  // hiredis words a read timeout as "Resource temporarily unavailable".
  if (context->err == REDIS_ERR_IO && error == "Resource temporarily unavailable") {
    error = "no answer within the command timeout";
  }
  return error;
}

}  // namespace stokend::tokens
