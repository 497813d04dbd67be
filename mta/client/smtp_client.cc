// See smtp_client.h. Command order and replies follow RFC 5321 §4.1 and
// §4.2; LMTP differences follow RFC 2033 §4; pipelining follows RFC 2920.
#include "mta/client/smtp_client.h"

#include <arpa/inet.h>
#include <event2/buffer.h>
#include <event2/bufferevent_ssl.h>
#include <netinet/in.h>
#include <spdlog/spdlog.h>
#include <sys/socket.h>
#include <sys/un.h>

#include <algorithm>
#include <cstring>

#include "common/openssl_text.h"
#include "mta/client/client_tls.h"
#include "mta/server/tls_context.h"

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

bool has_line_break(std::string_view text) {
  return text.find_first_of(std::string_view("\r\n\0", 3)) != std::string_view::npos;
}

bool is_ascii(std::string_view text) {
  return std::all_of(text.begin(), text.end(),
                     [](char c) { return static_cast<unsigned char>(c) < 0x80; });
}

// A reply that ends the connection's usefulness is always reported as a
// temporary failure: the enhanced code keeps its subject and detail but
// takes class 4 (RFC 3463 §3.1).
std::string as_temporary(const std::string& enhanced_code, const char* fallback) {
  if (enhanced_code.empty()) return fallback;
  return "4" + enhanced_code.substr(1);
}

DeliveryStatus status_of(const Reply& reply) {
  if (reply.is_positive()) return DeliveryStatus::delivered;
  if (reply.is_permanent_failure()) return DeliveryStatus::permanent;
  return DeliveryStatus::temporary;  // 4xx, or a 3xx where none belongs
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
  std::string out = line + "\r\n";
  bufferevent_write(connection_.get(), out.data(), out.size());
}

void SmtpClient::expect(const char* command, std::chrono::milliseconds timeout,
                        std::function<void(const Reply&)> handler) {
  awaited_.push_back({command, timeout, std::move(handler)});
  if (awaited_.size() == 1) deadline_.arm(timeout);
}

// ---- session setup -----------------------------------------------------

void SmtpClient::expect_greeting() {
  expect("greeting", settings_.timeouts.greeting,
         [this](const Reply& reply) { on_greeting(reply); });
}

void SmtpClient::on_greeting(const Reply& reply) {
  greeted_ = true;
  if (reply.code != 220) {
    return fail({as_temporary(reply.enhanced_code, "4.3.0"),
                 "host " + peer_ + " refused to talk to us: " + reply.to_string(), reply.code});
  }
  send_hello();
}

void SmtpClient::send_hello() {
  // RFC 2033 §4.1: LMTP has LHLO where SMTP has EHLO.
  bool lmtp = destination_.protocol == Protocol::lmtp;
  write_line((lmtp ? "LHLO " : "EHLO ") + settings_.helo_name);
  expect(lmtp ? "LHLO" : "EHLO", settings_.timeouts.command,
         [this](const Reply& reply) { on_hello(reply); });
}

void SmtpClient::on_hello(const Reply& reply) {
  if (reply.is_positive()) {
    capabilities_ = Capabilities::from_hello_reply(reply);
    return after_hello();
  }
  if (destination_.protocol == Protocol::smtp && reply.is_permanent_failure() && !tried_helo_) {
    // RFC 5321 §4.1.4: a server that does not know EHLO gets HELO.
    tried_helo_ = true;
    write_line("HELO " + settings_.helo_name);
    expect("HELO", settings_.timeouts.command, [this](const Reply& helo) { on_helo(helo); });
    return;
  }
  fail({as_temporary(reply.enhanced_code, "4.3.0"),
        peer_ + " refused our " + (destination_.protocol == Protocol::lmtp ? "LHLO" : "EHLO") +
            ": " + reply.to_string(),
        reply.code});
}

void SmtpClient::on_helo(const Reply& reply) {
  if (!reply.is_positive()) {
    return fail({as_temporary(reply.enhanced_code, "4.3.0"),
                 peer_ + " refused our HELO: " + reply.to_string(), reply.code});
  }
  capabilities_ = Capabilities{};  // HELO: no service extensions
  after_hello();
}

void SmtpClient::after_hello() {
  TlsPolicy policy = destination_.tls_policy;
  if (tls_active_ || policy == TlsPolicy::never) return become_ready();
  if (capabilities_.starttls && settings_.tls_context) {
    write_line("STARTTLS");
    expect("STARTTLS", settings_.timeouts.command,
           [this](const Reply& reply) { on_starttls(reply); });
    return;
  }
  if (policy == TlsPolicy::required) {
    // RFC 3207 §4.1 leaves the decision to the client; the wording follows
    // the one mail administrators know from Postfix.
    if (!capabilities_.starttls) {
      return fail({"4.7.4", "TLS is required, but was not offered by host " + peer_});
    }
    return fail({"4.7.5", "TLS is required, but no client TLS context is configured"});
  }
  become_ready();  // opportunistic, nothing to use: plaintext
}

void SmtpClient::on_starttls(const Reply& reply) {
  if (reply.code == 220) return start_tls();
  if (destination_.tls_policy == TlsPolicy::required) {
    return fail({"4.7.4",
                 "TLS is required, but " + peer_ + " refused STARTTLS: " + reply.to_string(),
                 reply.code});
  }
  spdlog::info("client {}: STARTTLS refused ({}), continuing without TLS", peer_,
               reply.to_string());
  become_ready();
}

void SmtpClient::start_tls() {
  // RFC 3207 §4.2 and CVE-2011-0411, from the client side: replies that
  // arrived in plaintext after the 220 must not be read as if they came
  // through TLS. Dropping the plaintext bufferevent discards them. (With
  // implicit TLS nothing can have arrived yet.)
  if (!settings_.tls_context)
    return fail({"4.7.5", "TLS is required, but no client TLS context is configured"});
  if (std::size_t injected = evbuffer_get_length(bufferevent_get_input(connection_.get()))) {
    spdlog::warn("client {}: discarded {} octets sent after the STARTTLS reply", peer_, injected);
  }
  release_bufferevent();
  std::string error;
  SslPtr ssl = new_client_tls(settings_.tls_context, destination_.tls_server_name,
                              destination_.verify_certificate, error);
  if (!ssl) return fail({"4.7.5", "TLS with " + peer_ + ": " + error});
  // From here the bufferevent owns the TLS state and the socket.
  bufferevent* raw = bufferevent_openssl_socket_new(
      base_, socket_.get(), ssl.get(), BUFFEREVENT_SSL_CONNECTING, BEV_OPT_CLOSE_ON_FREE);
  if (!raw) return fail({"4.7.5", "cannot start TLS with " + peer_});
  tls_ = ssl.release();
  socket_.release();
  bufferevent_openssl_set_allow_dirty_shutdown(raw, 1);
  phase_ = Phase::tls_handshake;
  install_bufferevent(raw);
  deadline_.arm(settings_.timeouts.tls_handshake);
}

void SmtpClient::tls_established() {
  deadline_.cancel();
  tls_active_ = true;
  phase_ = Phase::setting_up;
  spdlog::debug("client {}: TLS established: {}", peer_, describe_tls(tls_));
  if (!greeted_) return expect_greeting();  // implicit TLS
  // RFC 3207 §4.2: forget what the server said in plaintext and ask again.
  capabilities_ = Capabilities{};
  tried_helo_ = false;
  send_hello();
}

void SmtpClient::become_ready() {
  phase_ = Phase::ready;
  spdlog::debug("client {}: ready (tls={}, pipelining={})", peer_, tls_active_ ? "yes" : "no",
                capabilities_.pipelining ? "yes" : "no");
  auto done = std::exchange(connect_done_, {});
  if (done) done(std::nullopt);
}

// ---- transactions ------------------------------------------------------

void SmtpClient::send_transaction(Envelope envelope, std::shared_ptr<const std::string> message,
                                  TransactionCallback done) {
  auto refuse = [&](Failure failure) {
    TransactionResult result;
    for (const auto& address : envelope.recipients) {
      result.recipients.push_back(
          {address, DeliveryStatus::temporary, 0, failure.enhanced_code, failure.reason});
    }
    result.connection_failure = std::move(failure);
    deferred_.post([done = std::move(done), result = std::move(result)] { done(result); });
  };
  if (!is_idle()) return refuse({"4.3.0", "connection to " + peer_ + " is not idle"});
  if (!message) return refuse({"4.3.0", "no message given"});
  transaction_ = std::make_unique<Transaction>();
  Transaction& transaction = *transaction_;
  transaction.envelope = std::move(envelope);
  transaction.message = std::move(message);
  transaction.done = std::move(done);
  for (const auto& address : transaction.envelope.recipients) {
    transaction.result.recipients.push_back({address, DeliveryStatus::temporary, 0, "", ""});
  }
  transaction.outcome_final.assign(transaction.envelope.recipients.size(), false);
  if (phase_ == Phase::ready) begin_transaction();
  // Otherwise RSET is still being answered; on_reset_reply starts it.
}

void SmtpClient::begin_transaction() {
  Transaction& transaction = *transaction_;
  transaction.started = true;
  phase_ = Phase::busy;
  const Envelope& envelope = transaction.envelope;
  std::size_t size = transaction.message->size();

  // Decisions that need no round trip fail every recipient at once.
  auto refuse_all = [&](DeliveryStatus status, const std::string& enhanced,
                        const std::string& text) {
    for (auto& recipient : transaction.result.recipients) {
      recipient.status = status;
      recipient.enhanced_code = enhanced;
      recipient.text = text;
    }
    std::fill(transaction.outcome_final.begin(), transaction.outcome_final.end(), true);
    std::shared_ptr<Transaction> finished = std::move(transaction_);
    phase_ = Phase::ready;
    deferred_.post([finished] { finished->done(std::move(finished->result)); });
  };
  if (envelope.recipients.empty()) {
    return refuse_all(DeliveryStatus::permanent, "5.5.1", "no recipients");
  }
  bool smuggling =
      has_line_break(envelope.sender) || has_line_break(envelope.mail_parameters) ||
      has_line_break(envelope.dsn_mail_parameters) ||
      std::any_of(envelope.recipients.begin(), envelope.recipients.end(), has_line_break) ||
      std::any_of(envelope.recipient_parameters.begin(), envelope.recipient_parameters.end(),
                  has_line_break) ||
      std::any_of(envelope.dsn_recipient_parameters.begin(),
                  envelope.dsn_recipient_parameters.end(), has_line_break);
  if (smuggling) {
    return refuse_all(DeliveryStatus::permanent, "5.5.4",
                      "CR, LF or NUL in an envelope address or parameter");
  }
  bool needs_utf8 = !is_ascii(envelope.sender) ||
                    std::any_of(envelope.recipients.begin(), envelope.recipients.end(),
                                [](const std::string& address) { return !is_ascii(address); });
  if (needs_utf8 && !capabilities_.smtputf8) {
    // RFC 6531 §3.2: without SMTPUTF8 at the server, the message cannot go.
    return refuse_all(DeliveryStatus::permanent, "5.6.7",
                      "SMTPUTF8 is required, but was not offered by host " + peer_);
  }
  if (capabilities_.size_limit > 0 && size > capabilities_.size_limit) {
    // RFC 1870 §6.1: do not send what the server has said it will refuse.
    return refuse_all(DeliveryStatus::permanent, "5.3.4",
                      "message size " + std::to_string(size) + " exceeds size limit " +
                          std::to_string(capabilities_.size_limit) + " of server " + peer_);
  }

  std::string mail = "MAIL FROM:<" + envelope.sender + ">";
  if (capabilities_.size_announced) mail += " SIZE=" + std::to_string(size);  // RFC 1870 §6
  if (envelope.eight_bit_body && capabilities_.eight_bit_mime) mail += " BODY=8BITMIME";
  if (needs_utf8) mail += " SMTPUTF8";
  if (!envelope.mail_parameters.empty()) mail += " " + envelope.mail_parameters;
  transaction.result.dsn_offered = capabilities_.dsn;
  if (capabilities_.dsn && !envelope.dsn_mail_parameters.empty()) {
    mail += " " + envelope.dsn_mail_parameters;
  }

  transaction.pipelined = settings_.use_pipelining && capabilities_.pipelining;
  if (!transaction.pipelined) {
    write_line(mail);
    expect("MAIL", settings_.timeouts.command, [this](const Reply& r) { on_mail_reply(r); });
    return;
  }
  // RFC 2920 §3.1: MAIL and RCPT may be grouped; DATA ends the group. One
  // write, then the replies in the same order.
  std::string group = mail + "\r\n";
  for (std::size_t i = 0; i < envelope.recipients.size(); ++i) {
    group += recipient_command(i) + "\r\n";
  }
  group += "DATA\r\n";
  bufferevent_write(connection_.get(), group.data(), group.size());
  expect("MAIL", settings_.timeouts.command, [this](const Reply& r) { on_mail_reply(r); });
  for (std::size_t i = 0; i < envelope.recipients.size(); ++i) {
    expect("RCPT", settings_.timeouts.command,
           [this, i](const Reply& r) { on_recipient_reply(i, r); });
  }
  expect("DATA", settings_.timeouts.data_initiation, [this](const Reply& r) { on_data_reply(r); });
}

std::string SmtpClient::recipient_command(std::size_t index) const {
  const Envelope& envelope = transaction_->envelope;
  std::string command = "RCPT TO:<" + envelope.recipients[index] + ">";
  if (index < envelope.recipient_parameters.size() &&
      !envelope.recipient_parameters[index].empty()) {
    command += " " + envelope.recipient_parameters[index];
  }
  if (capabilities_.dsn && index < envelope.dsn_recipient_parameters.size() &&
      !envelope.dsn_recipient_parameters[index].empty()) {
    command += " " + envelope.dsn_recipient_parameters[index];
  }
  return command;
}

void SmtpClient::send_recipient(std::size_t index) {
  write_line(recipient_command(index));
  expect("RCPT", settings_.timeouts.command,
         [this, index](const Reply& r) { on_recipient_reply(index, r); });
}

void SmtpClient::send_data_command() {
  write_line("DATA");
  expect("DATA", settings_.timeouts.data_initiation, [this](const Reply& r) { on_data_reply(r); });
}

void SmtpClient::settle(std::size_t recipient, const Reply& reply) {
  RecipientResult& result = transaction_->result.recipients[recipient];
  result.status = status_of(reply);
  result.reply_code = reply.code;
  result.enhanced_code = reply.enhanced_code;
  result.text = reply.text();
  transaction_->outcome_final[recipient] = true;
}

void SmtpClient::on_mail_reply(const Reply& reply) {
  Transaction& transaction = *transaction_;
  if (!reply.is_positive()) {
    // MAIL refused: every recipient shares its fate (4xx temporary, 5xx
    // permanent). Pipelined RCPT and DATA replies still come and are
    // ignored (they will be 503s).
    transaction.mail_refused = true;
    for (std::size_t i = 0; i < transaction.result.recipients.size(); ++i) settle(i, reply);
    if (!transaction.pipelined) finish_transaction(true);
    return;
  }
  if (!transaction.pipelined) send_recipient(0);
}

void SmtpClient::on_recipient_reply(std::size_t index, const Reply& reply) {
  Transaction& transaction = *transaction_;
  if (transaction.mail_refused) return;
  if (reply.is_positive()) {
    transaction.accepted.push_back(index);
  } else {
    settle(index, reply);
  }
  if (transaction.pipelined) return;
  if (index + 1 < transaction.envelope.recipients.size()) return send_recipient(index + 1);
  if (transaction.accepted.empty()) return finish_transaction(true);
  send_data_command();
}

void SmtpClient::on_data_reply(const Reply& reply) {
  Transaction& transaction = *transaction_;
  if (reply.code == 354) {
    if (transaction.mail_refused || transaction.accepted.empty()) {
      // Pipelined, nobody accepted, and yet the server wants data (RFC 2920
      // §3.1 asks servers not to). Results are final already; the server
      // now waits for a message, so the connection cannot be reused.
      return finish_transaction(false);
    }
    transaction.stuffer.emplace(*transaction.message);
    // Keep the socket fed while streaming: refill at half a chunk.
    bufferevent_setwatermark(connection_.get(), EV_WRITE, settings_.data_chunk_size / 2, 0);
    return feed_data();
  }
  if (!transaction.mail_refused) {
    for (std::size_t index : transaction.accepted) settle(index, reply);
  }
  finish_transaction(true);
}

void SmtpClient::feed_data() {
  Transaction& transaction = *transaction_;
  evbuffer* output = bufferevent_get_output(connection_.get());
  std::string chunk;
  while (!transaction.stuffer->finished() &&
         evbuffer_get_length(output) < settings_.data_chunk_size) {
    chunk.clear();
    transaction.stuffer->append_next(chunk, settings_.data_chunk_size);
    bufferevent_write(connection_.get(), chunk.data(), chunk.size());
  }
  if (!transaction.stuffer->finished()) return;
  bufferevent_setwatermark(connection_.get(), EV_WRITE, 0, 0);
  transaction.result.message_sent = true;
  // RFC 2033 §4.2: LMTP answers the end of data once per accepted recipient.
  transaction.final_replies_expected =
      destination_.protocol == Protocol::lmtp ? transaction.accepted.size() : 1;
  for (std::size_t k = 0; k < transaction.final_replies_expected; ++k) {
    expect("end of data", settings_.timeouts.data_done,
           [this, k](const Reply& r) { on_final_reply(k, r); });
  }
}

void SmtpClient::on_final_reply(std::size_t index, const Reply& reply) {
  Transaction& transaction = *transaction_;
  if (destination_.protocol == Protocol::lmtp) {
    settle(transaction.accepted[index], reply);
  } else {
    for (std::size_t accepted : transaction.accepted) settle(accepted, reply);
  }
  if (index + 1 == transaction.final_replies_expected) finish_transaction(true);
}

void SmtpClient::finish_transaction(bool reusable) {
  auto finished = std::move(transaction_);
  ++transactions_completed_;
  if (reusable) {
    // Reset before the connection is offered again: it also proves the
    // connection still works (RFC 5321 §4.1.1.5).
    phase_ = Phase::resetting;
    write_line("RSET");
    expect("RSET", settings_.timeouts.command, [this](const Reply& r) { on_reset_reply(r); });
  } else {
    teardown();
  }
  finished->done(std::move(finished->result));
}

void SmtpClient::on_reset_reply(const Reply& reply) {
  if (phase_ != Phase::resetting) return;  // QUIT already on its way
  if (!reply.is_positive()) {
    return fail({as_temporary(reply.enhanced_code, "4.3.0"),
                 peer_ + " refused RSET: " + reply.to_string(), reply.code});
  }
  phase_ = Phase::ready;
  start_waiting_work();
}

void SmtpClient::start_waiting_work() {
  if (transaction_ && !transaction_->started) return begin_transaction();
  if (command_ && !command_->started) return begin_command();
}

// ---- raw commands ------------------------------------------------------

void SmtpClient::send_command(std::string line, CommandCallback done) {
  auto refuse = [&](std::string reason) {
    spdlog::info("client {}: {}", peer_, reason);
    CommandResult result;
    result.failure = Failure{"4.3.0", std::move(reason)};
    deferred_.post([done = std::move(done), result = std::move(result)] { done(result); });
  };
  if (line.find_first_of("\r\n") != std::string::npos) {
    return refuse("command line contains CR or LF");
  }
  if (!is_idle()) return refuse("connection to " + peer_ + " is not idle");
  command_ = Command{std::move(line), std::move(done), false};
  if (phase_ == Phase::ready) begin_command();
}

void SmtpClient::begin_command() {
  command_->started = true;
  phase_ = Phase::busy;
  write_line(command_->line);
  expect("command", settings_.timeouts.command, [this](const Reply& r) { on_command_reply(r); });
}

void SmtpClient::on_command_reply(const Reply& reply) {
  auto command = std::move(*command_);
  command_.reset();
  phase_ = Phase::ready;
  CommandResult result;
  result.reply = reply;
  command.done(std::move(result));
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
