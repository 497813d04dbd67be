// See smtp_client.h. This file holds the connection itself: creating and
// connecting the socket, the libevent callbacks, deadlines, reading replies
// and matching them to what was sent, and closing (QUIT, failure, teardown).
// Session setup is in smtp_client_setup.cc, mail transactions and raw
// commands in smtp_client_transaction.cc. Command order and replies follow
// RFC 5321 §4.1 and §4.2; LMTP differences follow RFC 2033 §4.
#include "mta/client/smtp_client.h"

#include <arpa/inet.h>
#include <event2/buffer.h>
#include <event2/bufferevent_ssl.h>
#include <netinet/in.h>
#include <spdlog/spdlog.h>
#include <sys/socket.h>
#include <sys/un.h>

#include <cstring>

#include "common/openssl_text.h"
#include "mta/client/client_tls.h"
#include "mta/defaults.h"
#include "mta/mta_metrics.h"

namespace stokend::client {
namespace {

struct SocketAddress {
  sockaddr_storage storage{};
  socklen_t length = 0;
  const sockaddr* get() const { return reinterpret_cast<const sockaddr*>(&storage); }
};

std::optional<SocketAddress> socket_address(const Destination& destination, std::string& error) {
  SocketAddress address;
  if (destination.is_unix_socket()) {
    auto* unix_address = reinterpret_cast<sockaddr_un*>(&address.storage);
    if (destination.unix_path.size() >= sizeof unix_address->sun_path) {
      error = "unix socket path too long: " + destination.unix_path;
      return std::nullopt;
    }
    unix_address->sun_family = AF_UNIX;
    std::memcpy(unix_address->sun_path, destination.unix_path.data(), destination.unix_path.size());
    address.length = static_cast<socklen_t>(sizeof(sockaddr_un));
    return address;
  }
  auto* ipv4 = reinterpret_cast<sockaddr_in*>(&address.storage);
  if (inet_pton(AF_INET, destination.host.c_str(), &ipv4->sin_addr) == 1) {
    ipv4->sin_family = AF_INET;
    ipv4->sin_port = htons(destination.port);
    address.length = sizeof(sockaddr_in);
    return address;
  }
  auto* ipv6 = reinterpret_cast<sockaddr_in6*>(&address.storage);
  if (inet_pton(AF_INET6, destination.host.c_str(), &ipv6->sin6_addr) == 1) {
    ipv6->sin6_family = AF_INET6;
    ipv6->sin6_port = htons(destination.port);
    address.length = sizeof(sockaddr_in6);
    return address;
  }
  error = "not an IP address literal: " + destination.host;
  return std::nullopt;
}

}  // namespace

std::shared_ptr<SmtpClient> SmtpClient::create(event_base* base, Destination destination,
                                               ClientSettings settings) {
  return std::make_shared<SmtpClient>(base, std::move(destination), std::move(settings));
}

SmtpClient::SmtpClient(event_base* base, Destination destination, ClientSettings settings)
    : base_(base),
      destination_(std::move(destination)),
      settings_(std::move(settings)),
      peer_(destination_.describe()),
      parser_(settings_.max_reply_lines),
      deadline_(base, [this] { on_deadline(); }),
      deferred_(base) {}

SmtpClient::~SmtpClient() = default;

bool SmtpClient::is_idle() const {
  return (phase_ == Phase::ready || phase_ == Phase::resetting) && !transaction_ && !command_;
}

std::string SmtpClient::tls_description() const {
  return tls_active_ ? describe_tls(tls_) : std::string{};
}

// ---- connection --------------------------------------------------------

void SmtpClient::connect(ConnectCallback done) {
  if (phase_ != Phase::created) {
    return post_failure({"4.3.0", "connect() called twice on the connection to " + peer_},
                        std::move(done));
  }
  connect_done_ = std::move(done);
  phase_ = Phase::connecting;
  std::string error;
  auto address = socket_address(destination_, error);
  if (!address) {
    // Our own configuration is wrong; nothing a retry would change soon.
    return post_failure({"4.3.5", error}, std::exchange(connect_done_, {}));
  }
  socket_.reset(
      ::socket(address->storage.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0));
  if (!socket_) {
    return post_failure(
        {"4.4.1", "cannot create a socket for " + peer_ + ": " + std::strerror(errno)},
        std::exchange(connect_done_, {}));
  }
  // The client keeps ownership of the descriptor, so that STARTTLS can
  // replace this bufferevent by a TLS one on the same socket.
  install_bufferevent(bufferevent_socket_new(base_, socket_.get(), 0));
  if (bufferevent_socket_connect(connection_.get(), address->get(), address->length) != 0) {
    int error_number = errno;
    teardown();
    return post_failure(
        {"4.4.1", "connect to " + peer_ + " failed: " + std::strerror(error_number)},
        std::exchange(connect_done_, {}));
  }
  deadline_.arm(settings_.timeouts.connect);
}

void SmtpClient::release_bufferevent() {
  if (!connection_) return;
  // Inside one of its own callbacks, libevent frees a bufferevent only once
  // the callback returns, and only then takes its events off the socket.
  // The socket may be closed before that (teardown), and its number reused
  // at once — c-ares opens sockets on the same loop — so the events must go
  // now: epoll would otherwise keep the closed file's registration and never
  // watch the new one.
  bufferevent_disable(connection_.get(), EV_READ | EV_WRITE);
  bufferevent_setcb(connection_.get(), nullptr, nullptr, nullptr, nullptr);
  connection_.reset();
}

void SmtpClient::install_bufferevent(bufferevent* raw) {
  connection_.reset(raw);
  bufferevent_setcb(raw, &SmtpClient::on_read, &SmtpClient::on_write, &SmtpClient::on_event, this);
  // Replies are bounded by our own deadlines; writes must make progress
  // within the data block timeout (RFC 5321 §4.5.3.2.5).
  auto write_timeout = to_timeval(settings_.timeouts.data_block);
  bufferevent_set_timeouts(raw, nullptr, &write_timeout);
  bufferevent_set_max_single_read(raw, defaults::socket_io_chunk);
  bufferevent_set_max_single_write(raw, defaults::socket_io_chunk);
  bufferevent_enable(raw, EV_READ | EV_WRITE);
}

void SmtpClient::post_failure(Failure failure, ConnectCallback done) {
  if (phase_ == Phase::connecting) phase_ = Phase::closed;
  spdlog::info("client {}: {}", peer_, failure.reason);
  deferred_.post([done = std::move(done), failure = std::move(failure)] { done(failure); });
}

void SmtpClient::on_read(bufferevent*, void* self) {
  auto client = static_cast<SmtpClient*>(self)->shared_from_this();
  client->process_input();
}

void SmtpClient::on_write(bufferevent*, void* self) {
  auto client = static_cast<SmtpClient*>(self)->shared_from_this();
  if (client->transaction_ && client->transaction_->stuffer &&
      !client->transaction_->stuffer->finished()) {
    client->feed_data();
  }
}

void SmtpClient::on_event(bufferevent*, short events, void* self) {
  auto client = static_cast<SmtpClient*>(self)->shared_from_this();
  const std::string& peer = client->peer_;
  if (events & BEV_EVENT_CONNECTED) {
    if (client->phase_ == Phase::connecting) {
      client->deadline_.cancel();
      client->phase_ = Phase::setting_up;
      spdlog::debug("client {}: connected", peer);
      // RFC 8314 §3.3: implicit TLS starts the handshake at once; the
      // greeting comes through TLS.
      if (client->destination_.implicit_tls) return client->start_tls();
      client->expect_greeting();
    } else if (client->phase_ == Phase::tls_handshake) {
      client->tls_established();
    }
    return;
  }
  if (client->phase_ == Phase::quitting) return client->on_quit_reply();
  if (client->phase_ == Phase::connecting) {
    int error_number = EVUTIL_SOCKET_ERROR();
    return client->fail({"4.4.1", "connect to " + peer +
                                      " failed: " + evutil_socket_error_to_string(error_number)});
  }
  if (client->phase_ == Phase::tls_handshake) {
    std::string why = openssl_errors();
    if (client->tls_) {
      std::string certificate = certificate_problem(client->tls_);
      if (!certificate.empty()) why = "certificate verification failed: " + certificate;
    }
    Failure failure{"4.7.5", "TLS handshake with " + peer + " failed: " + why};
    failure.tls_failed = true;
    mta_metrics::count_tls_failure(mta_metrics::Direction::outbound);
    return client->fail(std::move(failure));
  }
  bool idle = client->awaited_.empty() && !client->transaction_ && !client->command_;
  if (idle) {
    // The server dropped an idle connection (its own idle timeout).
    spdlog::debug("client {}: connection closed while idle", peer);
    return client->teardown();
  }
  std::string waiting_for = client->awaited_.empty() ? std::string("sending data")
                                                     : std::string("waiting for the reply to ") +
                                                           client->awaited_.front().command;
  if (events & BEV_EVENT_TIMEOUT) {
    return client->fail({"4.4.2", "timeout writing to " + peer + " (" + waiting_for + ")"});
  }
  if (events & BEV_EVENT_EOF) {
    return client->fail({"4.4.2", peer + " closed the connection (" + waiting_for + ")"});
  }
  int error_number = EVUTIL_SOCKET_ERROR();
  // Errors inside TLS leave errno alone and say why in OpenSSL's queue.
  std::string why = error_number != 0 || !client->tls_active_
                        ? evutil_socket_error_to_string(error_number)
                        : openssl_errors();
  client->fail({"4.4.2", "connection to " + peer + " failed (" + waiting_for + "): " + why});
}

void SmtpClient::on_deadline() {
  auto self = shared_from_this();
  switch (phase_) {
    case Phase::connecting:
      return fail({"4.4.1", "connect to " + peer_ + " timed out"});
    case Phase::tls_handshake: {
      Failure failure{"4.7.5", "TLS handshake with " + peer_ + " timed out"};
      failure.tls_failed = true;
      mta_metrics::count_tls_failure(mta_metrics::Direction::outbound);
      return fail(std::move(failure));
    }
    case Phase::quitting:
      return on_quit_reply();
    default:
      break;
  }
  std::string command = awaited_.empty() ? "a reply" : awaited_.front().command;
  fail({"4.4.2", "timeout waiting for the reply to " + command + " from " + peer_});
}

// ---- replies -----------------------------------------------------------

void SmtpClient::process_input() {
  while (connection_ && phase_ != Phase::tls_handshake) {
    evbuffer* input = bufferevent_get_input(connection_.get());
    std::size_t line_ending = 0;
    evbuffer_ptr found = evbuffer_search_eol(input, nullptr, &line_ending, EVBUFFER_EOL_CRLF);
    std::size_t limit = settings_.max_reply_line_length;
    if (found.pos < 0) {
      if (evbuffer_get_length(input) > limit) {
        fail({"4.5.0", "reply line from " + peer_ + " over " + std::to_string(limit) + " octets"});
      }
      return;
    }
    if (static_cast<std::size_t>(found.pos) + line_ending > limit) {
      return fail(
          {"4.5.0", "reply line from " + peer_ + " over " + std::to_string(limit) + " octets"});
    }
    std::string line(static_cast<std::size_t>(found.pos), '\0');
    evbuffer_remove(input, line.data(), line.size());
    evbuffer_drain(input, line_ending);
    if (settings_.transcript) settings_.transcript('S', line);
    switch (parser_.add_line(line)) {
      case ReplyParser::Status::need_more:
        break;
      case ReplyParser::Status::malformed:
        return fail({"4.5.0", parser_.error() + " from " + peer_});
      case ReplyParser::Status::complete:
        handle_reply(parser_.take());
        break;
    }
  }
}

void SmtpClient::handle_reply(Reply reply) {
  if (awaited_.empty()) {
    if (phase_ == Phase::ready && reply.code == 421) {
      // RFC 5321 §3.8: a server that is shutting down may say so unasked.
      spdlog::debug("client {}: server closing: {}", peer_, reply.to_string());
      return teardown();
    }
    return fail({"4.5.0", "unexpected reply from " + peer_ + ": " + reply.to_string()});
  }
  AwaitedReply awaited = std::move(awaited_.front());
  awaited_.pop_front();
  if (awaited_.empty()) {
    deadline_.cancel();
  } else {
    // Pipelined replies: each one gets its own deadline from here.
    deadline_.arm(awaited_.front().timeout);
  }
  spdlog::trace("client {}: {} -> {}", peer_, awaited.command, reply.to_string());
  awaited.handler(reply);
}

void SmtpClient::write_line(const std::string& line) {
  if (!connection_) return;
  if (settings_.transcript) settings_.transcript('C', line);
  std::string out = line + "\r\n";
  bufferevent_write(connection_.get(), out.data(), out.size());
}

void SmtpClient::expect(const char* command, std::chrono::milliseconds timeout,
                        std::function<void(const Reply&)> handler) {
  awaited_.push_back({command, timeout, std::move(handler)});
  if (awaited_.size() == 1) deadline_.arm(timeout);
}

// ---- closing -----------------------------------------------------------

void SmtpClient::close() {
  if (phase_ == Phase::closed || phase_ == Phase::quitting) return;
  if (is_idle()) {
    // RFC 5321 §4.1.1.10. Nothing depends on the answer; the client keeps
    // itself alive until it comes (or its short deadline passes).
    phase_ = Phase::quitting;
    self_while_quitting_ = shared_from_this();
    write_line("QUIT");
    expect("QUIT", settings_.timeouts.quit, [this](const Reply&) { on_quit_reply(); });
    if (awaited_.size() > 1) {
      // An RSET reply is still due first: its handler ignores it now, but
      // the deadline must be the quit deadline, not the command one.
      deadline_.arm(settings_.timeouts.quit);
    }
    return;
  }
  auto self = shared_from_this();
  fail({"4.3.0", "connection to " + peer_ + " closed while in use"});
}

void SmtpClient::abort() {
  teardown();
  phase_ = Phase::closed;
  auto keep = std::move(self_while_quitting_);  // may destroy this object
}

bool SmtpClient::is_quitting() const { return phase_ == Phase::quitting; }

void SmtpClient::on_quit_reply() {
  teardown();
  // May destroy this object: nothing after it.
  auto keep = std::move(self_while_quitting_);
}

void SmtpClient::teardown() {
  deadline_.cancel();
  awaited_.clear();
  release_bufferevent();
  socket_.reset();
  tls_ = nullptr;
  phase_ = Phase::closed;
}

void SmtpClient::fail(Failure failure) {
  if (phase_ == Phase::closed) return;
  spdlog::info("client {}: {}", peer_, failure.reason);
  teardown();
  if (auto done = std::exchange(connect_done_, {})) done(failure);
  if (transaction_) {
    auto finished = std::move(transaction_);
    if (finished->started) ++transactions_completed_;
    for (std::size_t i = 0; i < finished->result.recipients.size(); ++i) {
      if (finished->outcome_final[i]) continue;
      RecipientResult& result = finished->result.recipients[i];
      result.status = DeliveryStatus::temporary;
      result.reply_code = failure.reply_code;
      result.enhanced_code = as_temporary(failure.enhanced_code, "4.4.2");
      result.text = failure.reason;
    }
    finished->result.connection_failure = failure;
    finished->done(std::move(finished->result));
  }
  if (command_) {
    auto command = std::move(*command_);
    command_.reset();
    CommandResult result;
    result.failure = failure;
    command.done(std::move(result));
  }
  auto keep = std::move(self_while_quitting_);
}

}  // namespace stokend::client
