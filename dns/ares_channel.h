// A c-ares channel driven by a libevent loop: c-ares tells us, through its
// socket state callback, which sockets to watch for reading or writing; one
// libevent event per socket calls ares_process_fd() on readiness, and one
// timer, armed from ares_timeout(), lets c-ares retry and time out queries.
//
// Contract: loop thread only. query() returns at once; its callback runs later
// on the loop thread with the c-ares status and the raw response (which may be
// empty, and is only valid during the call). The callback may also run inside
// query() when c-ares fails at once (a bad name, no servers). Callbacks never
// run once the channel is destroyed, and must not destroy the channel.
// The constructor throws std::runtime_error if c-ares cannot be set up.
#pragma once

#include <chrono>
#include <functional>
#include <map>
#include <span>
#include <string>

#include "common/event_handles.h"
#include "dns/ares_handles.h"
#include "dns/record_type.h"

namespace stokend::dns {

struct ChannelOptions {
  std::string servers;  // "host:port,..." CSV; empty means the system's resolv.conf
  std::chrono::milliseconds timeout{5000};  // first try; c-ares doubles it per round
  int tries = 3;
};

class AresChannel {
 public:
  using ResponseCallback = std::function<void(int status, std::span<const unsigned char> response)>;

  AresChannel(event_base* base, const ChannelOptions& options);
  ~AresChannel();
  AresChannel(const AresChannel&) = delete;
  AresChannel& operator=(const AresChannel&) = delete;

  // Sends one question (class IN) for name, without search domains: mail
  // names are always fully qualified.
  void query(const std::string& name, RecordType type, ResponseCallback callback);

 private:
  static void on_socket_state(void* self, ares_socket_t socket, int readable, int writable);
  static void on_socket_ready(evutil_socket_t socket, short what, void* self);
  static void on_timer(evutil_socket_t, short, void* self);
  static void on_response(void* query, int status, int timeouts, unsigned char* response,
                          int length);
  void watch_socket(ares_socket_t socket, bool readable, bool writable);
  void arm_timer();

  event_base* base_;
  // Declared before channel_ so that they outlive it: ares_destroy() closes
  // the sockets and reports each through on_socket_state.
  std::map<ares_socket_t, EventPtr> socket_events_;
  EventPtr timer_;
  AresChannelPtr channel_;
};

}  // namespace stokend::dns
