// DovecotLink: one connection to a Dovecot auth listener (unix or inet), on
// the event loop, that hands over whole lines and reconnects by itself. The
// two Dovecot clients (dovecot_auth_client.h, dovecot_userdb.h) each own one
// and speak their protocol over it.
//
// Contract:
// - Loop thread only; nothing blocks (a non-blocking connect, bufferevents).
// - open() starts a connection unless one is open or being made, or the
//   back-off after a failure has not run out (then a retry timer is set:
//   the link comes back by itself). on_open runs once connected; the owner
//   sends its handshake and calls ready() when the server's side of the
//   handshake is complete, which resets the back-off.
// - close(reason) drops the connection, runs on_close(reason) (also for a
//   failed connect, an EOF, a read error, or a line over the limit) and
//   schedules the retry; the wait doubles from reconnect_min to reconnect_max.
// - Callbacks are never run from inside open(), send() or close() calls
//   made by the owner, except on_close from close() itself.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <string>
#include <string_view>

#include "common/event_handles.h"
#include "mta/auth/dovecot_endpoint.h"

namespace stokend::auth {

class DovecotLink {
 public:
  struct Callbacks {
    std::function<void()> on_open;
    std::function<void(std::string_view line)> on_line;
    std::function<void(const std::string& reason)> on_close;
  };
  enum class State { closed, connecting, open };

  DovecotLink(event_base* base, DovecotEndpoint endpoint, Callbacks callbacks);
  DovecotLink(const DovecotLink&) = delete;
  DovecotLink& operator=(const DovecotLink&) = delete;

  void open();
  void ready();                      // the handshake is complete: the back-off starts over
  void send(std::string_view line);  // without the LF; ignored unless open
  void close(const std::string& reason);

  State state() const { return state_; }
  const DovecotEndpoint& endpoint() const { return endpoint_; }

 private:
  static void on_read(bufferevent*, void* self);
  static void on_event(bufferevent*, short events, void* self);
  static void on_retry(evutil_socket_t, short, void* self);
  void schedule_retry();
  void connected();

  event_base* base_;
  DovecotEndpoint endpoint_;
  Callbacks callbacks_;
  BuffereventPtr connection_;
  EventPtr retry_timer_;
  State state_ = State::closed;
  std::chrono::milliseconds backoff_{0};
  std::chrono::steady_clock::time_point next_attempt_{};
};

// The next request id after last that no pending request uses: both of
// Dovecot's protocols number a client's requests with non-zero 32-bit ids
// of its choosing, echoed in the replies.
template <class Pending>
std::uint32_t next_request_id(std::uint32_t& last, const Pending& pending) {
  do {
    ++last;
  } while (last == 0 || pending.count(last));
  return last;
}

}  // namespace stokend::auth
