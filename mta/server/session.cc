// See session.h. The command handlers follow RFC 5321 §4.1; the reply texts
// are listed in REPLIES.md beside this file.
#include "mta/server/session.h"

#include <event2/buffer.h>
#include <event2/bufferevent_ssl.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <charconv>

#include "message/headers.h"
#include "message/received.h"
#include "mta/defaults.h"
#include "mta/message_id.h"
#include "mta/server/sasl.h"
#include "mta/users.h"
#include "mta/server/tls_context.h"
#include "mta/server/token_commands.h"
#include "tokens/pair_hash.h"
#include "tokens/token_format.h"

namespace stokend::server {
namespace {

bool iequals(std::string_view a, std::string_view b) {
  return std::equal(a.begin(), a.end(), b.begin(), b.end(), [](char x, char y) {
    return std::tolower(static_cast<unsigned char>(x)) ==
           std::tolower(static_cast<unsigned char>(y));
  });
}

std::optional<std::uint64_t> parse_decimal(std::string_view text) {
  if (text.empty() || text.size() > 19) return std::nullopt;
  std::uint64_t value = 0;
  auto [end, error] = std::from_chars(text.data(), text.data() + text.size(), value);
  if (error != std::errc{} || end != text.data() + text.size()) return std::nullopt;
  return value;
}

}  // namespace

Session::Session(ServerContext& context, const ListenerConfig& listener, UniqueFd socket,
                 std::string peer_address)
    : context_(context),
      listener_(listener),
      socket_(std::move(socket)),
      peer_address_(std::move(peer_address)),
      session_id_(new_session_id()),
      started_(std::chrono::steady_clock::now()),
      line_reader_(context.config.limits.max_line_length) {
  // RFC 4954 §4: SASL exchanges need longer lines, where AUTH is offered.
  if (listener.role == Role::submission) {
    line_reader_.set_auth_line_length(defaults::auth_line_length);
  }
}

Session::~Session() {
  auto seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - started_);
  spdlog::info("session {} end: client={} messages={} errors={} duration={:.3f}s", session_id_,
               peer_address_, messages_accepted_, error_count_, seconds.count());
}

void Session::start() {
  spdlog::info("session {} start: client={} listener={}:{} role={} tls={}", session_id_,
               peer_address_, listener_.address, listener_.port,
               listener_.role == Role::mx ? "mx" : "submission",
               listener_.tls == TlsMode::implicit ? "implicit" : "none");
  deadline_timer_.reset(evtimer_new(context_.base, &Session::on_deadline, this));
  auth_delay_timer_.reset(evtimer_new(context_.base, &Session::on_auth_delay, this));
  if (listener_.tls == TlsMode::implicit) {
    start_tls();
    return;
  }
  // Plain socket: the session keeps ownership of the descriptor, so that
  // STARTTLS can replace this bufferevent by a TLS one on the same socket.
  install_bufferevent(bufferevent_socket_new(context_.base, socket_.get(), 0));
  reply(220, "", context_.config.hostname + " ESMTP stokend");
}

void Session::install_bufferevent(bufferevent* raw) {
  connection_.reset(raw);
  bufferevent_setcb(raw, &Session::on_read, &Session::on_write, &Session::on_event, this);
  auto idle = to_timeval(context_.config.timeouts.idle);
  bufferevent_set_timeouts(raw, &idle, &idle);
  // Backpressure: stop reading when a client floods us while we are busy.
  bufferevent_setwatermark(raw, EV_READ, 0, 256 * 1024);
  bufferevent_enable(raw, EV_READ | EV_WRITE);
}

void Session::request_shutdown() {
  shutdown_requested_ = true;
  if (phase_ == Phase::waiting || phase_ == Phase::closing) return;  // finishes its work first
  if (phase_ == Phase::tls_handshake || phase_ == Phase::tls_starting) {
    close_now();
    return;
  }
  reply(421, "4.3.2", context_.config.hostname + " Service shutting down");
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
      spdlog::info("session {}: timeout ({}), dropping connection", session->session_id_,
                   session->phase_ == Phase::tls_handshake ? "TLS handshake" : "write");
      session->close_now();
      return;
    }
    spdlog::info("session {}: idle timeout", session->session_id_);
    session->reply(421, "4.4.2",
                   session->context_.config.hostname + " Timeout, closing connection");
    session->close_after_flush();
    return;
  }
  if (events & BEV_EVENT_ERROR) {
    if (session->phase_ == Phase::tls_handshake) {
      spdlog::info("session {}: TLS handshake failed: {}", session->session_id_, openssl_errors());
    } else {
      spdlog::debug("session {}: connection error", session->session_id_);
    }
  }
  // EOF or error: the client is gone. Work already handed to a worker still
  // completes (a committed message stays committed); its reply is dropped.
  session->close_now();
}

void Session::on_deadline(evutil_socket_t, short, void* self) {
  auto session = static_cast<Session*>(self)->shared_from_this();
  spdlog::info("session {}: {} deadline passed", session->session_id_,
               session->deadline_kind_ == DeadlineKind::data ? "DATA" : "command");
  session->deadline_kind_ = DeadlineKind::none;
  session->reply(421, "4.4.2", session->context_.config.hostname + " Timeout, closing connection");
  session->close_after_flush();
}

void Session::on_auth_delay(evutil_socket_t, short, void* self) {
  auto session = static_cast<Session*>(self)->shared_from_this();
  session->reply(535, "5.7.8", "Authentication credentials invalid");
  if (session->auth_failures_ >= session->context_.config.limits.max_auth_failures) {
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
      consumed = transaction_.reader->consume(chunk);
      evbuffer_drain(input, consumed);
      if (transaction_.reader->complete()) finish_message();
      continue;
    }
    if (phase_ == Phase::bdat_chunk) {
      consumed = static_cast<std::size_t>(
          std::min<std::uint64_t>(chunk.size(), transaction_.bdat_remaining));
      if (!transaction_.bdat_discard) transaction_.reader->consume_chunk(chunk.substr(0, consumed));
      transaction_.bdat_remaining -= consumed;
      evbuffer_drain(input, consumed);
      if (transaction_.bdat_remaining == 0) finish_bdat_chunk();
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
    auth_continue(line);
    return;
  }
  handle_command(parse_command(line));
}

void Session::handle_command(const Command& command) {
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
      return command_auth(command);
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
      return command_lhlo(command);
    case Verb::genstoken:
      return command_genstoken(command);
    case Verb::revstoken:
      return command_revstoken(command);
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
  helo_name_ = command.argument.substr(0, command.argument.find(' '));
  said_helo_ = true;
  extended_ = extended;
  lmtp_ = false;
  if (!extended) return reply(250, "", context_.config.hostname);

  std::vector<std::string> lines = greeting_lines();
  if (listener_.tls == TlsMode::starttls && !tls_active_ && context_.tls) {
    lines.push_back("STARTTLS");
  }
  // RFC 4954 §4 and RFC 8314 §3: credentials only ever cross an encrypted channel.
  if (listener_.role == Role::submission && tls_active_ && !authenticated_user_ && !token_login_) {
    lines.push_back("AUTH PLAIN LOGIN");
  }
  lines.push_back("DSN");  // RFC 3461; not after LHLO: token deliveries are not queued
  lines.push_back("HELP");
  reply_lines(250, lines);
}

std::vector<std::string> Session::greeting_lines() const {
  // The extensions EHLO and LHLO share, after the host name.
  return {context_.config.hostname,
          "PIPELINING",
          "SIZE " + std::to_string(context_.config.limits.max_message_size),
          "8BITMIME",
          "SMTPUTF8",
          "ENHANCEDSTATUSCODES",
          "CHUNKING"};
}

void Session::command_lhlo(const Command& command) {
  // The Token Server speaks LMTP after LHLO (rfcdraft/ §7), on submission
  // listeners only. STOKEN and AUTH STOKEN are announced only under TLS;
  // before it, LHLO offers STARTTLS, so an LMTP client can start TLS and
  // say LHLO again (as `swaks --protocol LMTP --tls` does).
  if (listener_.role != Role::submission || !context_.tokens) {
    return reply_error(502, "5.5.1", "LHLO is not available on this port");
  }
  if (command.argument.empty()) return reply_error(501, "5.5.4", "Syntax: LHLO hostname");
  reset_transaction();
  helo_name_ = command.argument.substr(0, command.argument.find(' '));
  said_helo_ = true;
  extended_ = true;
  lmtp_ = true;
  line_reader_.set_max_line_length(
      std::max(context_.config.limits.max_line_length, defaults::token_command_line_length));
  std::vector<std::string> lines = greeting_lines();
  if (!tls_active_) {
    if (listener_.tls == TlsMode::starttls && context_.tls) lines.push_back("STARTTLS");
  } else {
    if (!authenticated_user_ && !token_login_) lines.push_back("AUTH STOKEN");
    lines.push_back("STOKEN");
  }
  reply_lines(250, lines);
}

void Session::command_mail(const Command& command) {
  if (!said_helo_) return reply_error(503, "5.5.1", "Send EHLO/HELO first");
  if (transaction_.active) return reply_error(503, "5.5.1", "Nested MAIL command");
  auto parsed = parse_mail_argument(command.argument);
  if (!parsed.argument) {
    return reply_error(parsed.error.code, parsed.error.enhanced, parsed.error.text);
  }
  // A token transaction: after LHLO, or Dovecot's variant, EHLO and a
  // valueless SYNC parameter that asks for per-recipient replies.
  const EsmtpParameter* sync = find_parameter(parsed.argument->parameters, "SYNC");
  bool token_transaction = lmtp_ || (sync && context_.tokens &&
                                     listener_.role == Role::submission && !authenticated_user_);
  if (sync && !token_transaction) {
    return reply_error(555, "5.5.4", "Unsupported parameter SYNC");
  }
  if (token_transaction) {
    if (!tls_active_) return reply_error(530, "5.7.0", "Must issue a STARTTLS command first");
    if (sync && sync->has_value) return reply_error(501, "5.5.4", "SYNC takes no value");
    if (lmtp_ && !token_login_) return reply_error(530, "5.7.0", "Authentication required");
  } else if (token_login_) {
    return reply_error(503, "5.5.1",
                       "A token session delivers synchronously: send LHLO, or MAIL with SYNC");
  } else if (listener_.role == Role::submission && !authenticated_user_) {
    return reply_error(530, "5.7.0", "Authentication required");
  }
  bool utf8 = false;
  // DSN is offered after EHLO, to transactions that are queued.
  const bool dsn_offered = extended_ && !lmtp_ && !token_transaction;
  std::uint64_t declared_size = 0;
  for (const auto& parameter : parsed.argument->parameters) {
    if (parameter.keyword == "SIZE") {
      auto size = parse_decimal(parameter.value);
      if (!size) return reply_error(501, "5.5.4", "Syntax: SIZE=number");
      // RFC 1870 §6.2: refuse at MAIL when the declared size is over the limit.
      if (*size > context_.config.limits.max_message_size) {
        return reply_error(552, "5.3.4", "Message size exceeds fixed limit");
      }
      declared_size = *size;
    } else if (parameter.keyword == "BODY") {
      if (!iequals(parameter.value, "7BIT") && !iequals(parameter.value, "8BITMIME")) {
        return reply_error(501, "5.5.4", "Unsupported BODY type " + parameter.value);
      }
    } else if (parameter.keyword == "SMTPUTF8") {
      if (parameter.has_value) return reply_error(501, "5.5.4", "SMTPUTF8 takes no value");
      utf8 = true;
    } else if (parameter.keyword == "AUTH") {
      // RFC 4954 §5: accepted; we do not relay the identity further.
    } else if (parameter.keyword == "SYNC" && token_transaction) {
      // checked above
    } else if (dsn_offered && is_dsn_mail_keyword(parameter.keyword)) {
      // checked below
    } else {
      // RFC 5321 §4.1.1.11: parameter not recognised.
      return reply_error(555, "5.5.4", "Unsupported parameter " + parameter.keyword);
    }
  }
  MailDsnResult dsn = parse_mail_dsn(parsed.argument->parameters);
  if (!dsn.dsn) {
    spdlog::info("session {}: MAIL refused: {}", session_id_, dsn.error.text);
    return reply_error(dsn.error.code, dsn.error.enhanced, dsn.error.text);
  }
  const auto& path = parsed.argument->path;
  if (authenticated_user_) {
    // A submission user sends only as themselves (Postfix's
    // reject_sender_login_mismatch), so one account cannot forge another's mail.
    if (path.is_null || path.mailbox.normalized() != *authenticated_user_) {
      return reply_error(553, "5.7.1",
                         "Sender address " + (path.is_null ? "<>" : path.mailbox.to_string()) +
                             " not owned by user " + *authenticated_user_);
    }
  }
  if (token_transaction) {
    // A token lets its holder send as the token's remote address, and as
    // nobody else: the pair hash binds MAIL FROM (rfcdraft/ §7).
    if (path.is_null) {
      return reply_error(553, "5.7.1", "A token session cannot use the null sender");
    }
    if (token_login_ &&
        !tokens::TokenAuthority::pair_matches(token_login_->check, path.mailbox.normalized(),
                                              token_login_->recipient)) {
      spdlog::info("session {}: MAIL FROM {} is not the remote address of the token", session_id_,
                   path.mailbox.to_string());
      return reply_error(553, "5.7.1",
                         "Sender address " + path.mailbox.to_string() +
                             " is not the address the token was issued to");
    }
  }
  // A queued transaction needs room in the spool beyond the reserve
  // (queue/free_space.h); RFC 1870 §6.1 and RFC 3463 4.3.1: a temporary
  // refusal, the client retries later. Token transactions store nothing in
  // the spool.
  if (!token_transaction && context_.spool_space) {
    if (const auto space = context_.spool_space->check(declared_size); !space.enough) {
      spdlog::warn("session {}: MAIL refused: {} bytes free for the spool, reserve {}, size {}",
                   session_id_, space.available, context_.spool_space->reserve(), declared_size);
      return reply(452, "4.3.1", "Insufficient system storage");
    }
  }
  transaction_.active = true;
  transaction_.token = token_transaction;
  if (token_transaction) {
    line_reader_.set_max_line_length(
        std::max(context_.config.limits.max_line_length, defaults::token_command_line_length));
  }
  transaction_.sender = path;
  transaction_.utf8 = utf8;
  transaction_.dsn = std::move(*dsn.dsn);
  reply(250, "2.1.0", "Ok");
}

void Session::command_rcpt(const Command& command) {
  if (!transaction_.active) return reply_error(503, "5.5.1", "Need MAIL before RCPT");
  if (transaction_.reader) return reply_error(503, "5.5.1", "RCPT not allowed during BDAT");
  if (recipient_limit_reached()) return;
  auto parsed = parse_rcpt_argument(command.argument, transaction_.utf8);
  if (!parsed.argument) {
    return reply_error(parsed.error.code, parsed.error.enhanced, parsed.error.text);
  }
  if (transaction_.token)
    return token_recipient(parsed.argument->path, parsed.argument->parameters);
  for (const auto& parameter : parsed.argument->parameters) {
    if (!extended_ || !is_dsn_rcpt_keyword(parameter.keyword)) {
      return reply_error(555, "5.5.4", "Unsupported parameter " + parameter.keyword);
    }
  }
  RcptDsnResult dsn = parse_rcpt_dsn(parsed.argument->parameters, transaction_.utf8);
  if (!dsn.dsn) {
    spdlog::info("session {}: RCPT refused: {}", session_id_, dsn.error.text);
    return reply_error(dsn.error.code, dsn.error.enhanced, dsn.error.text);
  }
  const auto& path = parsed.argument->path;
  message::Mailbox mailbox = path.mailbox;
  if (mailbox.domain.empty()) {
    // RFC 5321 §4.1.1.3: "<Postmaster>" without a domain must be accepted;
    // it is the postmaster of our primary domain.
    mailbox.domain = context_.config.local_domains.front();
  }
  std::string shown = "<" + mailbox.to_string() + ">";
  bool local = !mailbox.domain_is_literal && context_.config.is_local_domain(mailbox.domain);

  if (!authenticated_user_) {
    // Never an open relay (RFC 5321 §3.6, RFC 2505 §2.6): without AUTH, only
    // our own domains, and none of the old tricks that make a local address
    // relay onwards (source route, %-hack, bang path, quoted '@').
    if (auto trick = message::relay_trick(path); !trick.empty()) {
      spdlog::info("session {}: relay attempt refused ({}) for {}", session_id_, trick, shown);
      return reply_error(550, "5.7.1", shown + ": Relay access denied (" + trick + ")");
    }
    if (!local) {
      spdlog::info("session {}: relay attempt refused for {}", session_id_, shown);
      return reply_error(550, "5.7.1", shown + ": Relay access denied");
    }
  }
  std::string address;
  if (local) {
    context_.users.refresh_if_changed();
    const User* user = context_.users.find(mailbox.normalized());
    if (!user) {
      // Users of the MX behind stokend need not be in the users file: ask
      // the MX (Postfix's reject_unverified_recipient).
      if (context_.recipient_verifier && context_.routes &&
          context_.config.recipient_probe.probes(mailbox.domain)) {
        return verify_recipient_at_next_hop(mailbox, shown, *dsn.dsn);
      }
      return reply_error(550, "5.1.1", shown + ": Recipient address rejected: user unknown");
    }
    address = user->address;
  } else {
    // Authenticated submission to another domain: queued for remote delivery.
    address = mailbox.to_string();
  }
  add_recipient(address, local, *dsn.dsn);
  reply(250, "2.1.5", "Ok");
}

void Session::add_recipient(const std::string& address, bool local,
                            const queue::RecipientDsn& dsn) {
  bool duplicate = std::any_of(transaction_.recipients.begin(), transaction_.recipients.end(),
                               [&](const auto& recipient) { return recipient.address == address; });
  if (!duplicate) transaction_.recipients.push_back({address, local, std::nullopt, dsn});
  ++transaction_.accepted_rcpt_commands;  // a repeated one counts too (recipient_limit_reached)
}

void Session::verify_recipient_at_next_hop(const message::Mailbox& mailbox,
                                           const std::string& shown,
                                           const queue::RecipientDsn& dsn) {
  const Route route = context_.routes->route_for(mailbox.domain, true);
  std::string address = mailbox.to_string();
  wait_for_work();
  std::weak_ptr<Session> weak = weak_from_this();
  context_.recipient_verifier->verify(
      address, route.next_hop, [weak, address, shown, dsn](RecipientCheck check) {
        if (auto session = weak.lock()) session->recipient_verified(address, shown, check, dsn);
      });
}

void Session::recipient_verified(const std::string& address, const std::string& shown,
                                 const RecipientCheck& check, const queue::RecipientDsn& dsn) {
  switch (check.verdict) {
    case RecipientCheck::Verdict::exists:
      add_recipient(address, true, dsn);
      reply(250, "2.1.5", "Ok");
      break;
    case RecipientCheck::Verdict::unknown:
      spdlog::info("session {}: {} refused by the next hop: {}", session_id_, shown, check.reply);
      reply_error(550, "5.1.1",
                  shown + ": Recipient address rejected: undeliverable address: " + check.reply);
      break;
    case RecipientCheck::Verdict::unverifiable:
      // Try later rather than accept what may bounce (Postfix's
      // unverified_recipient_tempfail_action default).
      spdlog::info("session {}: {} not verified: {}", session_id_, shown, check.reply);
      reply_error(450, "4.1.1",
                  shown + ": Recipient address rejected: unverified address: " + check.reply);
      break;
  }
  resume_reading();
}

void Session::command_data(const Command& command) {
  if (!command.argument.empty()) return reply_error(501, "5.5.4", "DATA takes no argument");
  if (!transaction_.active) return reply_error(503, "5.5.1", "Need MAIL before DATA");
  if (transaction_.used_bdat) return reply_error(503, "5.5.1", "DATA not allowed after BDAT");
  if (transaction_.recipients.empty()) return reply_error(554, "5.5.1", "No valid recipients");
  transaction_.reader.emplace(data_limits());
  phase_ = Phase::data;
  arm_deadline(DeadlineKind::data, context_.config.timeouts.data);
  reply(354, "", "End data with <CR><LF>.<CR><LF>");
}

void Session::command_bdat(const Command& command) {
  // RFC 3030 §2: BDAT chunk-size [SP "LAST"].
  std::string_view argument = command.argument;
  auto space = argument.find(' ');
  auto size = parse_decimal(argument.substr(0, space));
  bool last = false;
  if (space != std::string_view::npos) {
    if (!iequals(argument.substr(space + 1), "LAST")) size.reset();
    last = true;
  }
  if (!size) {
    // Without a valid size we cannot tell where the chunk ends, so the
    // session cannot stay in step: reply and close.
    reply_error(501, "5.5.4", "Syntax: BDAT size [LAST]");
    return close_after_flush();
  }
  transaction_.bdat_remaining = *size;
  transaction_.bdat_last = last;
  transaction_.bdat_discard = false;
  // The chunk's bytes follow whatever we answer; a refused chunk is still read.
  if (!transaction_.active || transaction_.recipients.empty()) {
    transaction_.bdat_discard = true;
  } else if (!transaction_.reader) {
    transaction_.used_bdat = true;
    transaction_.reader.emplace(data_limits());
    arm_deadline(DeadlineKind::data, context_.config.timeouts.data);
  }
  phase_ = Phase::bdat_chunk;
  if (*size == 0) finish_bdat_chunk();
}

void Session::finish_bdat_chunk() {
  phase_ = Phase::command;
  if (transaction_.bdat_discard) {
    transaction_.bdat_discard = false;
    if (!transaction_.active) return reply_error(503, "5.5.1", "Need MAIL before BDAT");
    return reply_error(554, "5.5.1", "No valid recipients");
  }
  if (transaction_.bdat_last) {
    transaction_.reader->finish_chunks();
    return finish_message();
  }
  reply(250, "2.0.0", std::to_string(transaction_.reader->size()) + " octets received");
}

void Session::command_rset() {
  reset_transaction();
  reply(250, "2.0.0", "Ok");
}

void Session::command_starttls(const Command& command) {
  if (listener_.tls != TlsMode::starttls || !context_.tls) {
    return reply_error(502, "5.5.1", "STARTTLS not available");
  }
  if (tls_active_) return reply_error(503, "5.5.1", "TLS already active");
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
  SslPtr ssl(SSL_new(context_.tls));
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
  auto handshake = to_timeval(context_.config.timeouts.tls_handshake);
  bufferevent_set_timeouts(raw, &handshake, &handshake);
}

void Session::tls_established() {
  tls_active_ = true;
  auto idle = to_timeval(context_.config.timeouts.idle);
  bufferevent_set_timeouts(connection_.get(), &idle, &idle);
  spdlog::info("session {}: TLS established: {}", session_id_, describe_tls(tls_));
  reset_session_state();
  phase_ = Phase::command;
  if (listener_.tls == TlsMode::implicit) {
    reply(220, "", context_.config.hostname + " ESMTP stokend");
  }
  process_input();
}

void Session::command_auth(const Command& command) {
  if (listener_.role != Role::submission) {
    return reply_error(503, "5.5.1", "Authentication not available on this port");
  }
  if (!tls_active_) {
    return reply_error(538, "5.7.11", "Encryption required for requested authentication mechanism");
  }
  if (authenticated_user_ || token_login_) {
    return reply_error(503, "5.5.1", "Already authenticated");
  }
  if (transaction_.active)
    return reply_error(503, "5.5.1", "AUTH not allowed during a transaction");
  std::string_view argument = command.argument;
  auto space = argument.find(' ');
  std::string_view mechanism = argument.substr(0, space);
  std::string_view initial =
      space == std::string_view::npos ? std::string_view{} : argument.substr(space + 1);

  if (lmtp_ && !iequals(mechanism, "STOKEN")) {
    // After LHLO the session is a Token Server session: tokens only.
    return reply_error(504, "5.5.4", "Only AUTH STOKEN is available after LHLO");
  }
  if (iequals(mechanism, "PLAIN")) {
    auth_mechanism_ = AuthMechanism::plain;
    if (initial.empty()) return ask_sasl_response("");
    return auth_continue(std::string(initial));
  }
  if (iequals(mechanism, "LOGIN")) {
    auth_mechanism_ = AuthMechanism::login;
    auth_login_.clear();
    if (initial.empty()) return ask_sasl_response(encode_base64("Username:"));
    return auth_continue(std::string(initial));
  }
  if (iequals(mechanism, "STOKEN") && context_.tokens) {
    auth_mechanism_ = AuthMechanism::stoken;
    if (initial.empty()) return ask_sasl_response("");
    return auth_continue(std::string(initial));
  }
  reply_error(504, "5.5.4", "Unrecognized authentication mechanism");
}

void Session::auth_continue(const std::string& line) {
  phase_ = Phase::command;
  if (line == "*") {  // RFC 4954 §4: the client cancels
    auth_mechanism_ = AuthMechanism::none;
    return reply_error(501, "5.0.0", "Authentication cancelled");
  }
  if (auth_mechanism_ == AuthMechanism::plain) {
    auto credentials = decode_plain(line);
    if (!credentials) return reply_error(501, "5.5.2", "Invalid PLAIN response");
    if (!credentials->authorization_identity.empty() &&
        message::ascii_lowercase(credentials->authorization_identity) !=
            message::ascii_lowercase(credentials->authentication_identity)) {
      // Acting as another user is not something we offer.
      wait_for_work();
      return auth_finished(false, credentials->authentication_identity);
    }
    return auth_verify(credentials->authentication_identity, credentials->password);
  }
  if (auth_mechanism_ == AuthMechanism::login) {
    auto decoded = decode_base64(line);
    if (!decoded || decoded->empty()) return reply_error(501, "5.5.2", "Invalid LOGIN response");
    if (auth_login_.empty()) {
      auth_login_ = *decoded;
      return ask_sasl_response(encode_base64("Password:"));
    }
    return auth_verify(std::exchange(auth_login_, {}), *decoded);
  }
  if (auth_mechanism_ == AuthMechanism::stoken) return auth_stoken(line);
  reply_error(503, "5.5.1", "No authentication in progress");
}

void Session::auth_verify(std::string login, std::string password) {
  context_.users.refresh_if_changed();
  const User* user = context_.users.find(login);
  // Unknown logins are checked against a dummy hash, so the time taken does
  // not reveal which addresses exist.
  std::string hash = user ? user->password_hash : context_.dummy_password_hash;
  bool known = user != nullptr;
  std::string address = user ? user->address : message::ascii_lowercase(login);
  wait_for_work();
  std::weak_ptr<Session> weak = weak_from_this();
  context_.workers.submit(
      [weak, hash = std::move(hash), password = std::move(password), known, address]() {
        bool ok = verify_password(hash, password) && known;
        return WorkRunner::Completion([weak, ok, address] {
          if (auto session = weak.lock()) session->auth_finished(ok, address);
        });
      });
}

void Session::auth_finished(bool success, const std::string& login) {
  auth_mechanism_ = AuthMechanism::none;
  if (success) {
    authenticated_user_ = login;
    spdlog::info("session {}: authenticated as {}", session_id_, login);
    reply(235, "2.7.0", "Authentication successful");
    return resume_reading();
  }
  ++auth_failures_;
  ++error_count_;
  spdlog::info("session {}: authentication failed for {} (failure {})", session_id_, login,
               auth_failures_);
  // The delay doubles with each failure to slow down password guessing.
  auto delay = context_.config.timeouts.auth_failure_base_delay;
  for (std::size_t i = 1;
       i < auth_failures_ && delay < context_.config.timeouts.auth_failure_max_delay; ++i) {
    delay *= 2;
  }
  delay = std::min(delay, context_.config.timeouts.auth_failure_max_delay);
  auto when = to_timeval(delay);
  evtimer_add(auth_delay_timer_.get(), &when);
}

// ---- message -----------------------------------------------------------

void Session::finish_message() {
  phase_ = Phase::command;
  arm_deadline(DeadlineKind::none, {});
  DataReader& reader = *transaction_.reader;
  if (reader.error() != DataReader::Error::none) return refuse_message(reader.error());
  if (const std::size_t stripped = reader.nul_octets_stripped(); stripped != 0) {
    spdlog::info("session {}: {} NUL octets stripped from the message", session_id_, stripped);
  }
  std::string message_id = new_message_id();
  message::ReceivedInfo trace;
  trace.helo_name = helo_name_;
  trace.client_address = peer_address_;
  trace.by_host = context_.config.hostname;
  trace.protocol = received_protocol();
  trace.id = message_id;
  if (transaction_.recipients.size() == 1) trace.recipient = transaction_.recipients[0].address;
  trace.tls_description = describe_tls(tls_active_ ? tls_ : nullptr);
  std::string body = reader.take_message();
  if (listener_.role == Role::mx) harvest_tokens(body);
  std::string message = message::received_header(trace);
  message.reserve(message.size() + body.size());
  message += body;
  if (transaction_.token) return deliver_with_tokens(std::move(message_id), std::move(message));
  enqueue(std::move(message_id), std::move(message));
}

void Session::enqueue(std::string message_id, std::string message) {
  queue::Envelope envelope;
  envelope.sender = transaction_.sender.is_null ? "" : transaction_.sender.mailbox.to_string();
  for (const auto& recipient : transaction_.recipients) {
    envelope.recipients.push_back(recipient.address);
    envelope.recipient_dsn.push_back(recipient.dsn);
  }
  // A message without NOTIFY or ORCPT keeps no DSN requests (record_format.h).
  if (std::all_of(envelope.recipient_dsn.begin(), envelope.recipient_dsn.end(),
                  [](const queue::RecipientDsn& dsn) { return dsn == queue::RecipientDsn{}; })) {
    envelope.recipient_dsn.clear();
  }
  envelope.dsn_return = transaction_.dsn.ret;
  envelope.envelope_id = transaction_.dsn.envelope_id;
  envelope.smtputf8 = transaction_.utf8;
  std::string recipients;
  for (const auto& address : envelope.recipients) {
    recipients += (recipients.empty() ? "" : ",") + address;
  }
  std::string sender = envelope.sender;
  std::size_t size = message.size();
  reset_transaction();
  wait_for_work();

  std::weak_ptr<Session> weak = weak_from_this();
  context_.queue.enqueue(
      std::move(envelope), std::move(message),
      [weak, message_id, sender, recipients, size](queue::EnqueueResult result) {
        auto session = weak.lock();
        if (!result) {
          spdlog::error("message {}: cannot be queued: {}", message_id, result.error.message());
          if (!session) return;
          if (queue::is_out_of_space(result.error)) {
            // RFC 3463 4.3.1 with RFC 5321 §4.2.2's 452: the spool is full;
            // the next MAIL measures the free space afresh.
            if (session->context_.spool_space) session->context_.spool_space->report_out_of_space();
            session->reply(452, "4.3.1", "Insufficient system storage");
          } else {
            session->reply(451, "4.3.0", "Temporary local problem, try again later");
          }
          session->resume_reading();
          return;
        }
        spdlog::info("message {} accepted as {}: session={} from=<{}> to={} size={} tls={} auth={}",
                     message_id, result.id, session ? session->session_id_ : "-", sender,
                     recipients, size, session && session->tls_active_ ? "yes" : "no",
                     session && session->authenticated_user_ ? *session->authenticated_user_ : "-");
        if (!session) return;
        ++session->messages_accepted_;
        session->reply(250, "2.0.0", "Ok: queued as " + result.id);
        session->resume_reading();
      });
}

// ---- replies and flow control -------------------------------------------

void Session::reply(int code, std::string_view enhanced, std::string_view text) {
  if (!connection_) return;
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

void Session::count_error() {
  if (++error_count_ >= context_.config.limits.error_limit) {
    spdlog::info("session {}: error limit ({}) reached", session_id_,
                 context_.config.limits.error_limit);
    reply(421, "4.7.0", context_.config.hostname + " Too many errors, closing connection");
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
    reply(421, "4.3.2", context_.config.hostname + " Service shutting down");
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
        arm_deadline(DeadlineKind::command, context_.config.timeouts.command);
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

void Session::reset_transaction() { transaction_ = Transaction{}; }

void Session::reset_session_state() {
  // RFC 3207 §4.2: after the handshake the server forgets what the client
  // told it in plaintext, and the client starts over with EHLO.
  reset_transaction();
  helo_name_.clear();
  said_helo_ = false;
  extended_ = false;
  lmtp_ = false;
  auth_mechanism_ = AuthMechanism::none;
  auth_login_.clear();
  line_reader_.reset();
}

}  // namespace stokend::server
