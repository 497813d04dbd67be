// Small hiredis helpers both Redis clients of the token store use: the
// command connections (redis_connection.h) and the change subscriber
// (redis_invalidations.h).
//
// Contract: pure functions, no I/O; context_error() accepts a null context
// (hiredis could not allocate one).
#pragma once

#include <hiredis/hiredis.h>
#include <sys/time.h>

#include <chrono>
#include <string>

namespace stokend::tokens {

// A deadline as hiredis takes it (redisConnectWithTimeout, redisSetTimeout).
timeval timeval_of(std::chrono::milliseconds duration);

// What went wrong on a context, in words for a log line or an error: a read
// timeout (hiredis: "Resource temporarily unavailable") is named as one.
std::string context_error(const redisContext* context);

}  // namespace stokend::tokens
