// c-ares on libevent. c-ares owns the sockets; this file only watches them.
#include "dns/ares_channel.h"

#include <memory>
#include <mutex>
#include <stdexcept>
#include <string>
#include <utility>

#include "common/event_handles.h"

namespace stokend::dns {
namespace {

constexpr int internet_class = 1;  // RFC 1035 section 3.2.4

// One query in flight. c-ares holds it as an opaque pointer between query()
// and on_response(), which takes ownership back.
struct PendingQuery {
  AresChannel::ResponseCallback callback;
};

void initialize_library_once() {
  static std::once_flag once;
  std::call_once(once, [] {
    int status = ares_library_init(ARES_LIB_INIT_ALL);
    if (status != ARES_SUCCESS) {
      throw std::runtime_error(std::string("cannot initialize c-ares: ") + ares_strerror(status));
    }
  });
}

}  // namespace

AresChannel::AresChannel(event_base* base, const ChannelOptions& options)
    : base_(base), timer_(evtimer_new(base, &AresChannel::on_timer, this)) {
  if (!timer_) throw std::runtime_error("cannot create the DNS timer event");
  if (options.tries < 1 || options.timeout.count() < 1) {
    throw std::runtime_error("DNS timeout and tries must be at least 1");
  }
  initialize_library_once();

  ares_options settings{};
  settings.sock_state_cb = &AresChannel::on_socket_state;
  settings.sock_state_cb_data = this;
  settings.timeout = static_cast<int>(options.timeout.count());
  settings.tries = options.tries;
  ares_channel created = nullptr;
  int status = ares_init_options(&created, &settings,
                                 ARES_OPT_SOCK_STATE_CB | ARES_OPT_TIMEOUTMS | ARES_OPT_TRIES);
  channel_.reset(created);
  if (status != ARES_SUCCESS) {
    throw std::runtime_error(std::string("cannot create a DNS channel: ") + ares_strerror(status));
  }
  if (!options.servers.empty()) {
    status = ares_set_servers_ports_csv(channel_.get(), options.servers.c_str());
    if (status != ARES_SUCCESS) {
      throw std::runtime_error("bad DNS server list \"" + options.servers +
                               "\": " + ares_strerror(status));
    }
  }
}

AresChannel::~AresChannel() = default;

void AresChannel::query(const std::string& name, RecordType type, ResponseCallback callback) {
  auto pending = std::make_unique<PendingQuery>(PendingQuery{std::move(callback)});
  // From here c-ares owns the query until on_response().
  ares_query(channel_.get(), name.c_str(), internet_class, static_cast<int>(type),
             &AresChannel::on_response, pending.release());
  arm_timer();
}

void AresChannel::on_response(void* query, int status, int, unsigned char* response, int length) {
  std::unique_ptr<PendingQuery> pending(static_cast<PendingQuery*>(query));
  // The channel is being destroyed: per the contract, nobody is called.
  if (status == ARES_EDESTRUCTION) return;
  std::span<const unsigned char> bytes;
  if (response && length > 0) bytes = {response, static_cast<std::size_t>(length)};
  pending->callback(status, bytes);
}

void AresChannel::on_socket_state(void* self, ares_socket_t socket, int readable, int writable) {
  static_cast<AresChannel*>(self)->watch_socket(socket, readable != 0, writable != 0);
}

void AresChannel::watch_socket(ares_socket_t socket, bool readable, bool writable) {
  // Freeing an event from inside its own callback is safe in libevent; this
  // happens when c-ares closes a socket while processing it.
  socket_events_.erase(socket);
  if (!readable && !writable) return;  // c-ares closed the socket
  short what = EV_PERSIST | (readable ? EV_READ : 0) | (writable ? EV_WRITE : 0);
  EventPtr watcher(event_new(base_, socket, what, &AresChannel::on_socket_ready, this));
  if (!watcher) return;  // out of memory: the query will time out through the timer
  event_add(watcher.get(), nullptr);
  socket_events_.emplace(socket, std::move(watcher));
}

void AresChannel::on_socket_ready(evutil_socket_t socket, short what, void* self) {
  auto* channel = static_cast<AresChannel*>(self);
  ares_process_fd(channel->channel_.get(), (what & EV_READ) ? socket : ARES_SOCKET_BAD,
                  (what & EV_WRITE) ? socket : ARES_SOCKET_BAD);
  channel->arm_timer();
}

void AresChannel::on_timer(evutil_socket_t, short, void* self) {
  auto* channel = static_cast<AresChannel*>(self);
  // No socket is ready: c-ares only checks for queries whose time is up.
  ares_process_fd(channel->channel_.get(), ARES_SOCKET_BAD, ARES_SOCKET_BAD);
  channel->arm_timer();
}

void AresChannel::arm_timer() {
  timeval wait{};
  if (ares_timeout(channel_.get(), nullptr, &wait)) {
    evtimer_add(timer_.get(), &wait);
  } else {
    evtimer_del(timer_.get());  // nothing in flight
  }
}

}  // namespace stokend::dns
