// See metrics_server.h. HTTP/1.1 is RFC 9110 (semantics) and RFC 9112
// (message syntax); each answer carries Content-Length and
// "Connection: close" and the connection closes once it is written.
#include "daemon/metrics_server.h"

#include <arpa/inet.h>
#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <netinet/in.h>
#include <spdlog/spdlog.h>
#include <sys/socket.h>

#include <algorithm>
#include <chrono>
#include <cstring>

#include "common/http_request.h"
#include "common/metrics.h"
#include "common/socket_address.h"
#include "common/timer.h"
#include "common/unique_fd.h"
#include "mta/mta_metrics.h"
#include "queue/queue_metrics.h"
#include "tokens/token_metrics.h"

namespace stokend::wiring {
namespace {

// RFC 9110 §15, the reason phrases of the answers given here.
constexpr const char* metrics_content_type = "text/plain; version=0.0.4; charset=utf-8";
constexpr const char* text_content_type = "text/plain; charset=utf-8";
// Over max_connections: written at once on the fresh socket, which takes a
// line this short without blocking; if it cannot, the close says enough.
constexpr std::string_view busy_answer =
    "HTTP/1.1 503 Service Unavailable\r\nContent-Length: 0\r\nRetry-After: 1\r\n"
    "Connection: close\r\n\r\n";

void gauge(std::string& out, std::string_view name, std::string_view help, double value) {
  metrics::text::append_family_header(out, name, help, metrics::Type::gauge);
  metrics::text::append_sample(out, name, {}, value);
}

}  // namespace

struct MetricsServer::Connection {
  MetricsServer* server = nullptr;
  BuffereventPtr buffer;
  std::unique_ptr<Timer> deadline;
  bool answered = false;
  bool lingering = false;  // answer written, our side shut: waiting for the client's close
};

void register_metrics() {
  queue::queue_metrics();
  tokens::token_metrics();
  mta_metrics::mta_metrics();
}

std::string render_metrics(const queue::QueueManager& queue) {
  std::string out;
  metrics::default_registry().render(out);
  // Computed now from the queue manager (on the loop thread, as it wants).
  const auto statistics = queue.statistics();
  gauge(out, "stokend_queue_messages", "Messages in the queue, held ones included.",
        static_cast<double>(statistics.messages));
  gauge(out, "stokend_queue_bytes", "Bytes of message data in the queue.",
        static_cast<double>(statistics.bytes));
  double oldest = 0;
  if (statistics.oldest_arrival) {
    oldest = std::max(0.0, std::chrono::duration<double>(std::chrono::system_clock::now() -
                                                         *statistics.oldest_arrival)
                               .count());
  }
  gauge(out, "stokend_queue_oldest_message_age_seconds",
        "Age of the oldest message in the queue, in seconds (0 when the queue is empty).", oldest);
  gauge(out, "stokend_queue_held_messages", "Messages on hold (stokenctl queue hold).",
        static_cast<double>(statistics.held));
  gauge(out, "stokend_queue_deliveries_in_flight", "Deliveries running now.",
        static_cast<double>(statistics.in_flight));
  return out;
}

bool start_metrics_server(MetricsServer& server, const Config& config) {
  if (!config.metrics.enabled()) return true;
  if (std::string error = server.open(); !error.empty()) {
    spdlog::critical("metrics.listen: {}", error);
    return false;
  }
  return true;
}

MetricsServer::MetricsServer(event_base* base, const MetricsConfig& config, MetricsSources sources)
    : base_(base), config_(config), sources_(sources) {}

MetricsServer::~MetricsServer() = default;

std::string MetricsServer::open() {
  auto address = socket_address(config_.address, config_.port);
  if (!address) return "invalid metrics address " + config_.address;
  listener_.reset(
      evconnlistener_new_bind(base_, &MetricsServer::on_accept, this,
                              LEV_OPT_CLOSE_ON_FREE | LEV_OPT_REUSEABLE | LEV_OPT_CLOSE_ON_EXEC, 64,
                              address->get(), static_cast<int>(address->length)));
  if (!listener_) {
    return "cannot listen on " + config_.address + ":" + std::to_string(config_.port) + ": " +
           std::strerror(errno);
  }
  spdlog::info("metrics on http://{}{}{}:{}/metrics (and /healthz)",
               config_.address.find(':') != std::string::npos ? "[" : "", config_.address,
               config_.address.find(':') != std::string::npos ? "]" : "", config_.port);
  return {};
}

void MetricsServer::on_accept(evconnlistener*, evutil_socket_t socket, sockaddr*, int, void* self) {
  static_cast<MetricsServer*>(self)->accept_connection(UniqueFd(socket));
}

void MetricsServer::accept_connection(UniqueFd socket) {
  if (connections_.size() >= config_.max_connections) {
    spdlog::warn("metrics: connection refused, {} open", connections_.size());
    [[maybe_unused]] auto written =
        ::send(socket.get(), busy_answer.data(), busy_answer.size(), MSG_NOSIGNAL | MSG_DONTWAIT);
    // Closing with unread input would reset the connection, and a reset can
    // discard the answer (RFC 9112 §9.6): drop what has arrived, a bounded
    // amount, without waiting for more.
    ::shutdown(socket.get(), SHUT_WR);
    char scratch[4096];
    for (int reads = 0;
         reads < 16 && ::recv(socket.get(), scratch, sizeof scratch, MSG_DONTWAIT) > 0; ++reads) {
    }
    return;
  }
  bufferevent* raw = bufferevent_socket_new(base_, socket.get(), BEV_OPT_CLOSE_ON_FREE);
  if (!raw) return;
  socket.release();  // the bufferevent owns it now
  auto connection = std::make_unique<Connection>();
  Connection* handle = connection.get();
  handle->server = this;
  handle->buffer.reset(raw);
  handle->deadline = std::make_unique<Timer>(base_, [this, handle] {
    spdlog::info("metrics: exchange not finished within {} ms, connection closed",
                 config_.timeout.count());
    close(*handle);
  });
  handle->deadline->arm(config_.timeout);
  connections_.emplace(handle, std::move(connection));

  // Read no more than a head may be: the watermark stops reading there.
  bufferevent_setwatermark(raw, EV_READ, 0, config_.max_request_size + 1);
  bufferevent_setcb(raw, &MetricsServer::on_read, &MetricsServer::on_write,
                    &MetricsServer::on_event, handle);
  bufferevent_enable(raw, EV_READ | EV_WRITE);
}

void MetricsServer::on_read(bufferevent*, void* argument) {
  auto* connection = static_cast<Connection*>(argument);
  connection->server->on_input(*connection);
}

void MetricsServer::on_write(bufferevent* buffer, void* argument) {
  auto* connection = static_cast<Connection*>(argument);
  if (!connection->answered || connection->lingering ||
      evbuffer_get_length(bufferevent_get_output(buffer)) != 0) {
    return;
  }
  // RFC 9112 §9.6: closing with unread input would make the kernel reset
  // the connection, and a reset can discard the answer before the client
  // reads it (a refused, over-long request). So shut our side, read and
  // drop what the client still sends, and close on its close (or at the
  // deadline).
  connection->lingering = true;
  ::shutdown(bufferevent_getfd(buffer), SHUT_WR);
  evbuffer* input = bufferevent_get_input(buffer);
  evbuffer_drain(input, evbuffer_get_length(input));
  bufferevent_enable(buffer, EV_READ);
}

void MetricsServer::on_event(bufferevent* buffer, short events, void* argument) {
  auto* connection = static_cast<Connection*>(argument);
  // A client that shut its side after the request still gets the answer.
  if ((events & BEV_EVENT_EOF) && connection->answered &&
      evbuffer_get_length(bufferevent_get_output(buffer)) != 0) {
    return;
  }
  connection->server->close(*connection);
}

void MetricsServer::on_input(Connection& connection) {
  evbuffer* input = bufferevent_get_input(connection.buffer.get());
  if (connection.answered) {
    evbuffer_drain(input, evbuffer_get_length(input));  // lingering: see on_write()
    return;
  }
  const std::size_t length = evbuffer_get_length(input);
  const auto* bytes = reinterpret_cast<const char*>(evbuffer_pullup(input, -1));
  const http::RequestHead head =
      http::parse_request_head(std::string_view(bytes, length), config_.max_request_size);
  switch (head.status) {
    case http::RequestHead::Status::incomplete:
      return;
    case http::RequestHead::Status::too_large:
      spdlog::info("metrics: request head over {} octets refused", config_.max_request_size);
      // RFC 6585 §5.
      return answer(connection, 431, "Request Header Fields Too Large", text_content_type,
                    "request head over " + std::to_string(config_.max_request_size) + " octets\n");
    case http::RequestHead::Status::malformed:
      spdlog::info("metrics: bad request: {}", head.error);
      return answer(connection, 400, "Bad Request", text_content_type, head.error + "\n");
    case http::RequestHead::Status::complete:
      break;
  }
  const bool metrics = head.path == "/metrics";
  const bool healthz = head.path == "/healthz";
  if (!metrics && !healthz) {
    return answer(connection, 404, "Not Found", text_content_type, "not found\n");
  }
  if (head.method != "GET") {
    // RFC 9110 §15.5.6: 405 names the methods the resource has.
    return answer(connection, 405, "Method Not Allowed", text_content_type,
                  "only GET is allowed here\n", "Allow: GET\r\n");
  }
  if (metrics) {
    return answer(connection, 200, "OK", metrics_content_type, render_metrics(*sources_.queue));
  }
  int status = 200;
  const std::string body = health(status);
  answer(connection, status, status == 200 ? "OK" : "Service Unavailable", text_content_type, body);
}

std::string MetricsServer::health(int& status) const {
  status = 503;
  if (sources_.stopping && *sources_.stopping) return "stopping\n";
  if (sources_.spool_space) {
    const auto space = sources_.spool_space->check();
    if (!space.enough) {
      return "spool file system under its reserve (queue.min_free_space): " +
             std::to_string(space.available) + " bytes free, " +
             std::to_string(sources_.spool_space->reserve()) + " needed\n";
    }
  }
  status = 200;
  return "ok\n";
}

void MetricsServer::answer(Connection& connection, int status, const std::string& reason,
                           const std::string& content_type, const std::string& body,
                           const std::string& extra_headers) {
  connection.answered = true;
  bufferevent* buffer = connection.buffer.get();
  bufferevent_disable(buffer, EV_READ);  // one request per connection
  std::string head =
      "HTTP/1.1 " + std::to_string(status) + " " + reason + "\r\nContent-Type: " + content_type +
      "\r\nContent-Length: " + std::to_string(body.size()) +
      "\r\nCache-Control: no-store\r\nConnection: close\r\n" + extra_headers + "\r\n";
  evbuffer* output = bufferevent_get_output(buffer);
  evbuffer_add(output, head.data(), head.size());
  evbuffer_add(output, body.data(), body.size());
}

void MetricsServer::close(Connection& connection) {
  // Destroys the connection: its bufferevent (and socket) and its timer.
  connections_.erase(&connection);
}

}  // namespace stokend::wiring
