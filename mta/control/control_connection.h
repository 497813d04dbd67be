// One control connection in the daemon: reads the request line, runs it
// against the queue (queue_commands.h), or hands RELOAD to the daemon's
// reload, and writes the answer, then is done.
//
// Limits: the request line must arrive whole within request_deadline and
// fit in max_request_line octets; an answer that makes no progress for
// write_timeout (a client that stopped reading) ends the connection. A
// listing is written in batches of listing_batch messages, the next batch
// only when the output buffer is below output_high_water, with a turn of the
// event loop between batches, so neither a large queue nor a slow reader
// holds up mail.
//
// Contract: loop thread only. Owned through a shared_ptr (queue callbacks
// hold weak references, so a connection may go away before the queue
// answers). `finished` is called once, from within a loop callback (never
// from start()), when it has nothing more to do; the owner must destroy it
// later, not inside that call.
#pragma once

#include <chrono>
#include <cstddef>
#include <functional>
#include <memory>
#include <string>

#include "common/event_handles.h"
#include "common/unique_fd.h"
#include "mta/control/control_protocol.h"
#include "mta/control/queue_commands.h"
#include "queue/queue_manager.h"

namespace stokend::control {

struct ControlLimits {
  std::size_t max_connections = 4;
  std::chrono::milliseconds request_deadline = std::chrono::seconds(5);
  std::chrono::milliseconds write_timeout = std::chrono::seconds(5);
  std::size_t listing_batch = 100;
  std::size_t output_high_water = 64 * 1024;
};

class ControlConnection : public std::enable_shared_from_this<ControlConnection> {
 public:
  using Finished = std::function<void(ControlConnection*)>;
  // Reloads the daemon's configuration and says how it went; empty: RELOAD
  // is answered "not available".
  using Reload = std::function<Answer()>;

  ControlConnection(event_base* base, queue::QueueManager& queue, const ControlLimits& limits,
                    const Reload& reload, Finished finished);
  ControlConnection(const ControlConnection&) = delete;
  ControlConnection& operator=(const ControlConnection&) = delete;

  // Takes the accepted socket and waits for the request. Returns an error
  // text when libevent cannot take it (the socket is closed then).
  std::string start(UniqueFd socket);

 private:
  enum class Phase { reading, waiting_for_queue, listing, draining, finished };

  static void on_read(bufferevent* events, void* self);
  static void on_write(bufferevent* events, void* self);
  static void on_event(bufferevent* events, short what, void* self);
  static void on_deadline(evutil_socket_t, short, void* self);
  static void on_continue_listing(evutil_socket_t, short, void* self);

  void read_request();
  void run(const Request& request);
  void answer(const Answer& answer);
  void continue_listing();
  void write(std::string_view wire);
  std::size_t output_length() const;
  void finish();

  event_base* base_;
  queue::QueueManager& queue_;
  const ControlLimits& limits_;
  const Reload& reload_;
  Finished finished_;
  Phase phase_ = Phase::reading;
  BuffereventPtr events_;
  EventPtr deadline_;
  EventPtr continuation_;
  bool continuation_pending_ = false;
  std::unique_ptr<QueueListing> listing_;
};

}  // namespace stokend::control
