// RAII owners for libevent and OpenSSL objects, so that no code in stokend
// frees one by hand. Each is a std::unique_ptr with the library's own free
// function as deleter.
#pragma once

#include <event2/bufferevent.h>
#include <event2/event.h>
#include <event2/listener.h>
#include <openssl/ssl.h>

#include <chrono>
#include <memory>

#include "common/call_free.h"

namespace stokend {

using EventBasePtr = std::unique_ptr<event_base, CallFree<event_base_free>>;
using EventPtr = std::unique_ptr<event, CallFree<event_free>>;
using BuffereventPtr = std::unique_ptr<bufferevent, CallFree<bufferevent_free>>;
using ListenerPtr = std::unique_ptr<evconnlistener, CallFree<evconnlistener_free>>;
using SslContextPtr = std::unique_ptr<SSL_CTX, CallFree<SSL_CTX_free>>;
using SslPtr = std::unique_ptr<SSL, CallFree<SSL_free>>;

// libevent takes timeouts as timeval.
inline timeval to_timeval(std::chrono::milliseconds duration) {
  timeval value{};
  value.tv_sec = static_cast<time_t>(duration.count() / 1000);
  value.tv_usec = static_cast<suseconds_t>((duration.count() % 1000) * 1000);
  return value;
}

}  // namespace stokend
