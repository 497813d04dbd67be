// The session core (see session.h): the connection, TLS, reading input,
// replies, phases and deadlines, the greetings and the AUTH failure delay.
// The command handlers follow RFC 5321 §4.1; the reply texts are listed in
// REPLIES.md beside this file.
#include "mta/server/session.h"

#include <event2/buffer.h>
#include <event2/bufferevent_ssl.h>
#include <spdlog/spdlog.h>

#include <algorithm>

#include "common/ascii.h"
#include "common/log_lines.h"
#include "common/openssl_text.h"
#include "common/service_log.h"
#include "mta/defaults.h"
#include "mta/message_id.h"
#include "mta/mta_metrics.h"
#include "mta/server/session_log.h"
#include "mta/server/tls_context.h"
#include "mta/server/token_server.h"

namespace stokend::server {

Session::Session(const ServerContext& context, const ListenerConfig& listener, UniqueFd socket,
                 std::string peer_address)
    : context_(context),
      listener_(listener),
      socket_(std::move(socket)),
      peer_address_(std::move(peer_address)),
      session_id_(new_session_id()),
      started_(std::chrono::steady_clock::now()),
      line_reader_(context.config().limits.max_line_length) {
  // RFC 4954 §4: SASL exchanges need longer lines, where AUTH is offered.
  role_ = make_session_role(*this, listener);
  if (role_->offers_auth()) line_reader_.set_auth_line_length(defaults::auth_line_length);
  mta_metrics::session_opened(metrics_role());
}

Session::~Session() {
  const bool token_client = role_->token_server() && role_->token_server()->logged_in();
  mta_metrics::session_closed(metrics_role(),
                              token_client ? mta_metrics::Role::token_server : metrics_role());
  auto seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - started_);
  spdlog::info("session {} end: client={} messages={} errors={} duration={:.3f}s", session_id_,
               peer_address_, messages_accepted_, error_count_, seconds.count());
  service_log(Service::smtpd).info("disconnect from {}", logged_client());
}

void Session::start() {
  spdlog::info("session {} start: client={} listener={}:{} role={} tls={}", session_id_,
               peer_address_, listener_.address, listener_.port, role_->name(),
               listener_.tls == TlsMode::implicit ? "implicit" : "none");
  service_log(Service::smtpd).info("connect from {}", logged_client());
  deadline_timer_.reset(evtimer_new(context_.base, &Session::on_deadline, this));
  auth_delay_timer_.reset(evtimer_new(context_.base, &Session::on_auth_delay, this));
  if (listener_.tls == TlsMode::implicit) {
    start_tls();
    return;
  }
  // Plain socket: the session keeps ownership of the descriptor, so that
  // STARTTLS can replace this bufferevent by a TLS one on the same socket.
  install_bufferevent(bufferevent_socket_new(context_.base, socket_.get(), 0));
  reply(220, "", context_.config().hostname + " ESMTP stokend");
}

void Session::install_bufferevent(bufferevent* raw) {
  connection_.reset(raw);
  bufferevent_setcb(raw, &Session::on_read, &Session::on_write, &Session::on_event, this);
  auto idle = to_timeval(context_.config().timeouts.idle);
  bufferevent_set_timeouts(raw, &idle, &idle);
  // Backpressure: stop reading when a client floods us while we are busy.
  bufferevent_setwatermark(raw, EV_READ, 0, 256 * 1024);
  bufferevent_set_max_single_read(raw, defaults::socket_io_chunk);
  bufferevent_set_max_single_write(raw, defaults::socket_io_chunk);
  bufferevent_enable(raw, EV_READ | EV_WRITE);
}

void Session::request_shutdown() {
  shutdown_requested_ = true;
  if (phase_ == Phase::waiting || phase_ == Phase::closing) return;  // finishes its work first
  if (phase_ == Phase::tls_handshake || phase_ == Phase::tls_starting) {
    close_now();
    return;
  }
  reply(421, "4.3.2", context_.config().hostname + " Service shutting down");
  close_after_flush();
}

// ---- libevent callbacks ------------------------------------------------

void Session::on_read(bufferevent*, void* self) {
  auto session = static_cast<Session*>(self)->shared_from_this();
  session->process_input();
}

void Session::on_write(bufferevent* bev, void* self) {
  auto session = static_cast<Session*>(self)->shared_from_this();
  if (evbuffer_get_length(bufferevent_get_output(bev)) != 0) return;
  if (session->phase_ == Phase::closing) {
    session->close_now();
  } else if (session->phase_ == Phase::tls_starting) {
    session->start_tls();
  }
}

void Session::on_event(bufferevent*, short events, void* self) {
  auto session = static_cast<Session*>(self)->shared_from_this();
  if (events & BEV_EVENT_CONNECTED) {  // TLS handshake done
    session->tls_established();
    return;
  }
  if (events & BEV_EVENT_TIMEOUT) {
    if (session->phase_ == Phase::tls_handshake || (events & BEV_EVENT_WRITING) ||
        session->phase_ == Phase::closing) {
      if (session->phase_ == Phase::tls_handshake) {
        mta_metrics::count_tls_failure(mta_metrics::Direction::inbound);
      }
      spdlog::info("session {}: timeout ({}), dropping connection", session->session_id_,
                   session->phase_ == Phase::tls_handshake ? "TLS handshake" : "write");
      session->close_now();
      return;
    }
    spdlog::info("session {}: idle timeout", session->session_id_);
    session->reply(421, "4.4.2",
                   session->context_.config().hostname + " Timeout, closing connection");
    session->close_after_flush();
    return;
  }
  if (events & BEV_EVENT_ERROR) {
    if (session->phase_ == Phase::tls_handshake) {
      mta_metrics::count_tls_failure(mta_metrics::Direction::inbound);
      spdlog::info("session {}: TLS handshake failed: {}", session->session_id_, openssl_errors());
    } else {
      spdlog::debug("session {}: connection error", session->session_id_);
    }
  }
  // EOF or error: the client is gone. Work already handed to a worker still
  // completes (a committed message stays committed); its reply is dropped.
  if (session->current_verb_ != Verb::quit && session->phase_ != Phase::closing) {
    // smtpd's line for a client that left without QUIT (fail2ban's ddos mode).
    service_log(Service::smtpd)
        .info("lost connection after {} from {}", session->logged_command(),
              session->logged_client());
  }
  session->close_now();
}

void Session::on_deadline(evutil_socket_t, short, void* self) {
  auto session = static_cast<Session*>(self)->shared_from_this();
  spdlog::info("session {}: {} deadline passed", session->session_id_,
               session->deadline_kind_ == DeadlineKind::data ? "DATA" : "command");
  session->deadline_kind_ = DeadlineKind::none;
  session->reply(421, "4.4.2",
                 session->context_.config().hostname + " Timeout, closing connection");
  session->close_after_flush();
}

void Session::on_auth_delay(evutil_socket_t, short, void* self) {
  auto session = static_cast<Session*>(self)->shared_from_this();
  session->reply(535, "5.7.8", "Authentication credentials invalid");
  if (session->auth_failures_ >= session->context_.config().limits.max_auth_failures) {
    session->reply(421, "4.7.0", "Too many authentication failures");
    session->close_after_flush();
    return;
  }
  session->resume_reading();
}

// ---- input -------------------------------------------------------------

void Session::process_input() {
  if (!connection_) return;
  evbuffer* input = bufferevent_get_input(connection_.get());
  for (;;) {
    if (phase_ != Phase::command && phase_ != Phase::auth_response && phase_ != Phase::data &&
        phase_ != Phase::bdat_chunk) {
      break;
    }
    std::size_t available = evbuffer_get_length(input);
    if (available == 0) break;
    evbuffer_iovec vector{};
    if (evbuffer_peek(input, -1, nullptr, &vector, 1) < 1) break;
    std::string_view chunk(static_cast<const char*>(vector.iov_base), vector.iov_len);
    std::size_t consumed = 0;

    if (phase_ == Phase::data) {
      consumed = state_.transaction.reader->consume(chunk);
      evbuffer_drain(input, consumed);
      if (state_.transaction.reader->complete()) finish_message();
      continue;
    }
    if (phase_ == Phase::bdat_chunk) {
      consumed = static_cast<std::size_t>(
          std::min<std::uint64_t>(chunk.size(), state_.transaction.bdat_remaining));
      if (!state_.transaction.bdat_discard)
        state_.transaction.reader->consume_chunk(chunk.substr(0, consumed));
      state_.transaction.bdat_remaining -= consumed;
      evbuffer_drain(input, consumed);
      if (state_.transaction.bdat_remaining == 0) finish_bdat_chunk();
      continue;
    }

    auto status = line_reader_.next(chunk, consumed);
    // Copy the line before draining: it may point into the buffer.
    std::string line = status == LineReader::Status::line ? line_reader_.line() : std::string{};
    evbuffer_drain(input, consumed);
    switch (status) {
      case LineReader::Status::need_more:
        break;
      case LineReader::Status::line:
        handle_line(line);
        break;
      case LineReader::Status::too_long:
      case LineReader::Status::auth_too_long:
      case LineReader::Status::bad_line_ending:
      case LineReader::Status::nul_octet:
        refuse_line(status);
        break;
    }
  }
  update_deadline();
}

void Session::handle_line(const std::string& line) {
  if (phase_ == Phase::auth_response) {
    phase_ = Phase::command;
    role_->auth_response(line);
    return;
  }
  handle_command(parse_command(line));
}

void Session::handle_command(const Command& command) {
  current_verb_ = command.verb;
  current_verb_text_ = command.verb_text;
  current_path_.clear();
  if (command.verb == Verb::mail || command.verb == Verb::rcpt) {
    current_path_ = logged_path(command.argument);
  } else if (command.verb == Verb::auth) {
    sasl_mechanism_ = logged_mechanism(command.argument);
  }
  switch (command.verb) {
    case Verb::ehlo:
      return command_helo(command, true);
    case Verb::helo:
      return command_helo(command, false);
    case Verb::mail:
      return command_mail(command);
    case Verb::rcpt:
      return command_rcpt(command);
    case Verb::data:
      return command_data(command);
    case Verb::bdat:
      return command_bdat(command);
    case Verb::rset:
      return command_rset();
    case Verb::starttls:
      return command_starttls(command);
    case Verb::auth:
      return role_->command_auth(command);
    case Verb::noop:
      return reply(250, "2.0.0", "Ok");
    case Verb::vrfy:
      // RFC 5321 §3.5.3: 252 when we will not confirm addresses.
      return reply(252, "2.5.0", "Cannot VRFY user, but will accept message and attempt delivery");
    case Verb::expn:
      return reply_error(502, "5.5.1", "EXPN is not supported");
    case Verb::help:
      return reply(214, "2.0.0", "See RFC 5321; stokend speaks ESMTP");
    case Verb::quit:
      reply(221, "2.0.0", "Bye");
      return close_after_flush();
    case Verb::lhlo:
      return role_->command_lhlo(command);
    case Verb::genstoken:
      return role_->command_genstoken(command);
    case Verb::revstoken:
      return role_->command_revstoken(command);
    case Verb::unknown:
      break;
  }
  reply_error(500, "5.5.1", "Unrecognized command");
}

// ---- commands ----------------------------------------------------------

void Session::command_helo(const Command& command, bool extended) {
  if (command.argument.empty()) {
    return reply_error(501, "5.5.4",
                       std::string("Syntax: ") + (extended ? "EHLO" : "HELO") + " hostname");
  }
  // RFC 5321 §4.1.4: EHLO in a session resets the transaction.
  reset_transaction();
  state_.helo_name = command.argument.substr(0, command.argument.find(' '));
  state_.greeting = extended ? Greeting::ehlo : Greeting::helo;
  if (!extended) return reply(250, "", context_.config().hostname);

  std::vector<std::string> lines = greeting_lines();
  if (starttls_offered()) lines.push_back("STARTTLS");
  role_->add_ehlo_keywords(lines);
  lines.push_back("DSN");  // RFC 3461; not after LHLO: token deliveries are not queued
  lines.push_back("HELP");
  reply_lines(250, lines);
}

bool Session::starttls_offered() const {
  return listener_.tls == TlsMode::starttls && !state_.tls_active && context_.tls();
}

void Session::allow_token_command_lines() {
  line_reader_.set_max_line_length(
      std::max(context_.config().limits.max_line_length, defaults::token_command_line_length));
}

std::vector<std::string> Session::greeting_lines() const {
  // The extensions EHLO and LHLO share, after the host name.
  return {context_.config().hostname,
          "PIPELINING",
          "SIZE " + std::to_string(context_.config().limits.max_message_size),
          "8BITMIME",
          "SMTPUTF8",
          "ENHANCEDSTATUSCODES",
          "CHUNKING"};
}

void Session::command_rset() {
  reset_transaction();
  reply(250, "2.0.0", "Ok");
}

// ---- TLS ---------------------------------------------------------------

void Session::command_starttls(const Command& command) {
  if (listener_.tls != TlsMode::starttls || !context_.tls()) {
    return reply_error(502, "5.5.1", "STARTTLS not available");
  }
  if (state_.tls_active) return reply_error(503, "5.5.1", "TLS already active");
  if (!command.argument.empty()) return reply_error(501, "5.5.4", "STARTTLS takes no argument");
  reply(220, "2.0.0", "Ready to start TLS");
  // Nothing more is read in plaintext: what follows is the handshake.
  phase_ = Phase::tls_starting;
  bufferevent_disable(connection_.get(), EV_READ);
}

void Session::start_tls() {
  if (connection_) {
    // RFC 3207 §4.2 / CVE-2011-0411: anything the client pipelined after
    // STARTTLS arrived in plaintext and must not be read as if it came
    // through TLS. Dropping the plaintext bufferevent discards it.
    std::size_t injected = evbuffer_get_length(bufferevent_get_input(connection_.get()));
    if (injected > 0) {
      spdlog::warn("session {}: discarded {} octets sent after STARTTLS before the handshake",
                   session_id_, injected);
    }
    connection_.reset();
  }
  line_reader_.reset();
  SslPtr ssl(SSL_new(context_.tls()));
  if (!ssl) {
    spdlog::error("session {}: cannot create TLS state: {}", session_id_, openssl_errors());
    return close_now();
  }
  tls_ = ssl.get();
  // From here the bufferevent owns the SSL object and the socket.
  bufferevent* raw = bufferevent_openssl_socket_new(
      context_.base, socket_.get(), ssl.get(), BUFFEREVENT_SSL_ACCEPTING, BEV_OPT_CLOSE_ON_FREE);
  if (!raw) {
    spdlog::error("session {}: cannot start TLS", session_id_);
    tls_ = nullptr;
    return close_now();
  }
  ssl.release();
  socket_.release();
  bufferevent_openssl_set_allow_dirty_shutdown(raw, 1);
  phase_ = Phase::tls_handshake;
  install_bufferevent(raw);
  auto handshake = to_timeval(context_.config().timeouts.tls_handshake);
  bufferevent_set_timeouts(raw, &handshake, &handshake);
}

void Session::tls_established() {
  state_.tls_active = true;
  mta_metrics::count_tls_handshake(mta_metrics::Direction::inbound, SSL_version(tls_));
  auto idle = to_timeval(context_.config().timeouts.idle);
  bufferevent_set_timeouts(connection_.get(), &idle, &idle);
  spdlog::info("session {}: TLS established: {}", session_id_, describe_tls(tls_));
  reset_session_state();
  phase_ = Phase::command;
  if (listener_.tls == TlsMode::implicit) {
    reply(220, "", context_.config().hostname + " ESMTP stokend");
  }
  process_input();
}

// ---- AUTH (the mechanisms are the role's) ------------------------------

void Session::authentication_succeeded(const std::string& login) {
  state_.authenticated_user = login;
  spdlog::info("session {}: authenticated as {}", session_id_, login);
  reply(235, "2.7.0", "Authentication successful");
  resume_reading();
}

void Session::authentication_failed(const std::string& login) {
  ++auth_failures_;
  ++error_count_;
  spdlog::info("session {}: authentication failed for {} (failure {})", session_id_, login,
               auth_failures_);
  // Postfix's words, which fail2ban's postfix filter (mode=auth) matches;
  // never the SASL response itself.
  service_log(Service::smtpd)
      .warn("{}: SASL {} authentication failed: authentication failure, sasl_username={}",
            logged_client(), sasl_mechanism_.empty() ? "LOGIN" : sasl_mechanism_,
            log_lines::printable(login));
  // The delay doubles with each failure to slow down password guessing.
  auto delay = context_.config().timeouts.auth_failure_base_delay;
  for (std::size_t i = 1;
       i < auth_failures_ && delay < context_.config().timeouts.auth_failure_max_delay; ++i) {
    delay *= 2;
  }
  delay = std::min(delay, context_.config().timeouts.auth_failure_max_delay);
  auto when = to_timeval(delay);
  evtimer_add(auth_delay_timer_.get(), &when);
}

// ---- replies and flow control -------------------------------------------

void Session::reply(int code, std::string_view enhanced, std::string_view text) {
  if (!connection_) return;
  if (code >= 400 && code != 421 && (current_verb_ == Verb::mail || current_verb_ == Verb::rcpt)) {
    log_reject(code, enhanced, text);
  }
  std::string line = std::to_string(code);
  if (text.empty() && enhanced.empty()) {
    line += ' ';
  } else {
    line += ' ';
    if (!enhanced.empty()) {
      line += enhanced;
      if (!text.empty()) line += ' ';
    }
    line += text;
  }
  line += "\r\n";
  bufferevent_write(connection_.get(), line.data(), line.size());
}

void Session::reply_lines(int code, const std::vector<std::string>& lines) {
  if (!connection_) return;
  std::string out;
  for (std::size_t i = 0; i < lines.size(); ++i) {
    out += std::to_string(code);
    out += i + 1 == lines.size() ? ' ' : '-';
    out += lines[i];
    out += "\r\n";
  }
  bufferevent_write(connection_.get(), out.data(), out.size());
}

void Session::reply_line(const std::string& line) {
  if (!connection_) return;
  std::string out = line + "\r\n";
  bufferevent_write(connection_.get(), out.data(), out.size());
}

void Session::reply_error(int code, std::string_view enhanced, std::string_view text) {
  reply(code, enhanced, text);
  count_error();
}

mta_metrics::Role Session::metrics_role() const {
  return mta_metrics::listener_role(listener_.role == Role::mx, listener_.tls == TlsMode::implicit);
}

void Session::count_error() {
  if (++error_count_ >= context_.config().limits.error_limit) {
    spdlog::info("session {}: error limit ({}) reached", session_id_,
                 context_.config().limits.error_limit);
    service_log(Service::smtpd)
        .info("too many errors after {} from {}", logged_command(), logged_client());
    reply(421, "4.7.0", context_.config().hostname + " Too many errors, closing connection");
    close_after_flush();
  }
}

void Session::wait_for_work() {
  phase_ = Phase::waiting;
  if (connection_) bufferevent_disable(connection_.get(), EV_READ);
}

void Session::resume_reading() {
  if (phase_ == Phase::closing || !connection_) return;
  if (shutdown_requested_) {
    reply(421, "4.3.2", context_.config().hostname + " Service shutting down");
    return close_after_flush();
  }
  if (phase_ == Phase::waiting) phase_ = Phase::command;
  bufferevent_enable(connection_.get(), EV_READ);
  // Pipelined commands may already be buffered: no new read event will come.
  process_input();
}

void Session::close_after_flush() {
  phase_ = Phase::closing;
  arm_deadline(DeadlineKind::none, {});
  if (!connection_) return close_now();
  bufferevent_disable(connection_.get(), EV_READ);
  if (evbuffer_get_length(bufferevent_get_output(connection_.get())) == 0) close_now();
}

std::weak_ptr<SessionCore> Session::weak() {
  return std::static_pointer_cast<SessionCore>(shared_from_this());
}

void Session::close_now() {
  phase_ = Phase::closing;
  if (deadline_timer_) evtimer_del(deadline_timer_.get());
  if (auth_delay_timer_) evtimer_del(auth_delay_timer_.get());
  connection_.reset();
  socket_.reset();
  context_.sessions.remove(this);  // may destroy *this; callers hold a shared_ptr
}

void Session::update_deadline() {
  if (phase_ == Phase::command || phase_ == Phase::auth_response) {
    if (line_reader_.has_partial_line()) {
      // A command line has started: it must finish within the command
      // deadline, however slowly its bytes trickle in.
      if (deadline_kind_ != DeadlineKind::command) {
        arm_deadline(DeadlineKind::command, context_.config().timeouts.command);
      }
    } else if (deadline_kind_ == DeadlineKind::command) {
      arm_deadline(DeadlineKind::none, {});
    }
  }
}

void Session::arm_deadline(DeadlineKind kind, std::chrono::milliseconds timeout) {
  if (!deadline_timer_) return;
  evtimer_del(deadline_timer_.get());
  deadline_kind_ = kind;
  if (kind == DeadlineKind::none) return;
  auto when = to_timeval(timeout);
  evtimer_add(deadline_timer_.get(), &when);
}

void Session::reset_transaction() { state_.transaction = Transaction{}; }

void Session::reset_session_state() {
  // RFC 3207 §4.2: after the handshake the server forgets what the client
  // told it in plaintext, and the client starts over with EHLO.
  reset_transaction();
  state_.helo_name.clear();
  state_.greeting = Greeting::none;
  role_->cancel_auth();
  line_reader_.reset();
}

// ---- Postfix-shaped log lines (session_log.h) ---------------------------

std::string Session::logged_client() const { return log_lines::client(peer_address_); }

std::string Session::logged_command() const {
  if (current_verb_text_.empty()) return "CONNECT";
  return log_lines::printable(ascii_uppercase(current_verb_text_.substr(0, 16)));
}

void Session::log_reject(int code, std::string_view enhanced, std::string_view text) {
  log_lines::Reject line;
  const bool rcpt = current_verb_ == Verb::rcpt;
  line.stage = rcpt ? "RCPT" : "MAIL";
  line.client = logged_client();
  line.reply = std::to_string(code) + " " + std::string(enhanced);
  if (!enhanced.empty() && !text.empty()) line.reply += " ";
  line.reply += text;
  const Transaction& transaction = state_.transaction;
  if (rcpt) {
    line.sender_known = transaction.active;
    if (transaction.active && !transaction.sender.is_null) {
      line.sender = transaction.sender.mailbox.to_string();
    }
    line.recipient = current_path_;
  } else {
    line.sender_known = true;
    line.sender = current_path_;
  }
  line.protocol = logged_protocol(state_);
  line.helo = state_.helo_name;
  service_log(Service::smtpd).info("{}", log_lines::reject(line));
}

}  // namespace stokend::server
