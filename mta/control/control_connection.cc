// See control_connection.h.
#include "mta/control/control_connection.h"

#include <event2/buffer.h>
#include <spdlog/spdlog.h>

#include <optional>
#include <utility>

namespace stokend::control {
namespace {

Answer error_answer(std::string reason) { return Answer{false, std::move(reason), {}}; }

}  // namespace

ControlConnection::ControlConnection(event_base* base, queue::QueueManager& queue,
                                     const ControlLimits& limits, const Reload& reload,
                                     Finished finished)
    : base_(base),
      queue_(queue),
      limits_(limits),
      reload_(reload),
      finished_(std::move(finished)) {}

std::string ControlConnection::start(UniqueFd socket) {
  events_.reset(bufferevent_socket_new(base_, socket.get(), BEV_OPT_CLOSE_ON_FREE));
  if (!events_) return "cannot set up a control connection";
  socket.release();
  deadline_.reset(evtimer_new(base_, &ControlConnection::on_deadline, this));
  continuation_.reset(event_new(base_, -1, 0, &ControlConnection::on_continue_listing, this));
  if (!deadline_ || !continuation_) return "cannot set up a control connection";
  const timeval deadline = to_timeval(limits_.request_deadline);
  evtimer_add(deadline_.get(), &deadline);
  const timeval write_timeout = to_timeval(limits_.write_timeout);
  bufferevent_set_timeouts(events_.get(), nullptr, &write_timeout);
  bufferevent_setcb(events_.get(), &ControlConnection::on_read, &ControlConnection::on_write,
                    &ControlConnection::on_event, this);
  bufferevent_enable(events_.get(), EV_READ);
  return {};
}

void ControlConnection::on_read(bufferevent*, void* self) {
  static_cast<ControlConnection*>(self)->read_request();
}

void ControlConnection::on_write(bufferevent*, void* self) {
  auto* connection = static_cast<ControlConnection*>(self);
  // Called when the output has drained.
  if (connection->phase_ == Phase::draining) {
    connection->finish();
  } else if (connection->phase_ == Phase::listing && !connection->continuation_pending_) {
    connection->continue_listing();
  }
}

void ControlConnection::on_event(bufferevent*, short what, void* self) {
  auto* connection = static_cast<ControlConnection*>(self);
  const bool partial_request =
      connection->phase_ == Phase::reading && (what & BEV_EVENT_EOF) &&
      evbuffer_get_length(bufferevent_get_input(connection->events_.get())) > 0;
  if (partial_request) {
    // The client may only have shut down its sending side: tell it why.
    return connection->answer(error_answer("request line without its line end"));
  }
  if (what & BEV_EVENT_TIMEOUT) spdlog::warn("control: a client stopped reading its answer");
  // Nothing asked, a write error or a stalled reader: nobody is left to answer.
  connection->finish();
}

void ControlConnection::on_deadline(evutil_socket_t, short, void* self) {
  auto* connection = static_cast<ControlConnection*>(self);
  if (connection->phase_ != Phase::reading) return;
  connection->answer(error_answer("timeout: no whole request line within " +
                                  std::to_string(connection->limits_.request_deadline.count()) +
                                  " ms"));
}

void ControlConnection::on_continue_listing(evutil_socket_t, short, void* self) {
  auto* connection = static_cast<ControlConnection*>(self);
  connection->continuation_pending_ = false;
  if (connection->phase_ == Phase::listing) connection->continue_listing();
}

void ControlConnection::read_request() {
  if (phase_ != Phase::reading) return;
  evbuffer* input = bufferevent_get_input(events_.get());
  std::size_t line_end_length = 0;
  const evbuffer_ptr line_end =
      evbuffer_search_eol(input, nullptr, &line_end_length, EVBUFFER_EOL_LF);
  const bool too_long = line_end.pos < 0
                            ? evbuffer_get_length(input) >= max_request_line
                            : static_cast<std::size_t>(line_end.pos) + 1 > max_request_line;
  if (too_long) {
    return answer(
        error_answer("request line longer than " + std::to_string(max_request_line) + " octets"));
  }
  if (line_end.pos < 0) return;  // not whole yet
  std::string line(static_cast<std::size_t>(line_end.pos), '\0');
  evbuffer_remove(input, line.data(), line.size());
  // One request per connection: whatever follows is ignored.
  bufferevent_disable(events_.get(), EV_READ);
  evtimer_del(deadline_.get());
  std::string error;
  const std::optional<Request> request = parse_request(line, error);
  if (!request) return answer(error_answer(error));
  run(*request);
}

void ControlConnection::run(const Request& request) {
  std::string line = format_request(request);
  line.pop_back();
  spdlog::debug("control: {}", line);
  switch (request.command) {
    case Command::list:
      phase_ = Phase::listing;
      listing_ = std::make_unique<QueueListing>(queue_);
      write(status_line(Answer{}));
      return continue_listing();
    case Command::show:
      return answer(show_message(queue_, request.id));
    case Command::flush:
      return answer(flush_messages(queue_, request.id));
    case Command::hold:
    case Command::release:
    case Command::remove:
    case Command::requeue:
      phase_ = Phase::waiting_for_queue;
      return change_messages(queue_, request, [weak = weak_from_this()](const Answer& result) {
        // The connection may have ended meanwhile (a write
        // error, the daemon stopping).
        if (auto connection = weak.lock()) connection->answer(result);
      });
    case Command::reload:
      if (!reload_) return answer(error_answer("reload is not available"));
      return answer(reload_());
  }
}

void ControlConnection::answer(const Answer& result) {
  if (phase_ == Phase::finished) return;
  bufferevent_disable(events_.get(), EV_READ);
  evtimer_del(deadline_.get());
  phase_ = Phase::draining;
  write(encode_answer(result));
}

void ControlConnection::continue_listing() {
  std::string text;
  const bool complete = listing_->append_next(text, limits_.listing_batch);
  std::string wire;
  append_body(wire, text);
  if (complete) {
    wire += end_of_answer;
    listing_.reset();
    phase_ = Phase::draining;
  }
  write(wire);
  // Complete, failed, or enough waiting to be sent: on_write takes it on.
  if (phase_ != Phase::listing || output_length() >= limits_.output_high_water) return;
  continuation_pending_ = true;
  event_active(continuation_.get(), 0, 0);
}

void ControlConnection::write(std::string_view wire) {
  if (bufferevent_write(events_.get(), wire.data(), wire.size()) != 0) finish();
}

std::size_t ControlConnection::output_length() const {
  return evbuffer_get_length(bufferevent_get_output(events_.get()));
}

void ControlConnection::finish() {
  if (phase_ == Phase::finished) return;
  phase_ = Phase::finished;
  listing_.reset();
  bufferevent_disable(events_.get(), EV_READ | EV_WRITE);
  evtimer_del(deadline_.get());
  event_del(continuation_.get());
  finished_(this);
}

}  // namespace stokend::control
