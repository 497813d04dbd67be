// The mail transaction of the session core (see session.h): MAIL, RCPT,
// DATA and BDAT (RFC 5321 §4.1.1.2-4.1.1.4, RFC 3030), recipients of the
// local domains (a user, or asked of the next hop: recipient_verifier.h),
// and handing the message to the queue (or, in a token transaction, to the
// role for synchronous delivery). The role decides who may send and to whom
// (session_role.h).
#include <event2/buffer.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <cctype>
#include <charconv>

#include "common/ascii.h"
#include "common/log_lines.h"
#include "common/openssl_text.h"
#include "common/service_log.h"
#include "message/headers.h"
#include "message/received.h"
#include "mta/addresses/local_users.h"
#include "mta/message_id.h"
#include "mta/mta_metrics.h"
#include "mta/server/session.h"
#include "mta/server/session_log.h"
#include "mta/server/tls_context.h"
#include "mta/server/token_server.h"
#include "queue/free_space.h"

namespace stokend::server {
namespace {

// A SIZE= or BDAT size: digits only, at most 19 of them (so that it fits in
// 64 bits without relying on the overflow check alone).
std::optional<std::uint64_t> parse_size(std::string_view text) {
  if (text.size() > 19) return std::nullopt;
  return parse_decimal(text);
}

}  // namespace

void Session::command_mail(const Command& command) {
  Transaction& transaction = state_.transaction;
  if (!state_.said_helo()) return reply_error(503, "5.5.1", "Send EHLO/HELO first");
  if (transaction.active) return reply_error(503, "5.5.1", "Nested MAIL command");
  auto parsed = parse_mail_argument(command.argument);
  if (!parsed.argument) {
    return reply_error(parsed.error.code, parsed.error.enhanced, parsed.error.text);
  }
  // A token transaction (the Token Server's): after LHLO, or Dovecot's
  // variant, EHLO and a valueless SYNC parameter that asks for
  // per-recipient replies. The role decides, and who may send at all.
  const EsmtpParameter* sync = find_parameter(parsed.argument->parameters, "SYNC");
  const std::optional<bool> admitted = role_->admit_mail(sync);
  if (!admitted) return;
  const bool token_transaction = *admitted;
  bool utf8 = false;
  // DSN is offered after EHLO, to transactions that are queued.
  const bool dsn_offered = state_.greeting == Greeting::ehlo && !token_transaction;
  std::uint64_t declared_size = 0;
  for (const auto& parameter : parsed.argument->parameters) {
    if (parameter.keyword == "SIZE") {
      auto size = parse_size(parameter.value);
      if (!size) return reply_error(501, "5.5.4", "Syntax: SIZE=number");
      // RFC 1870 §6.2: refuse at MAIL when the declared size is over the limit.
      if (*size > context_.config().limits.max_message_size) {
        mta_metrics::count_rejected(mta_metrics::Rejection::size);
        return reply_error(552, "5.3.4", "Message size exceeds fixed limit");
      }
      declared_size = *size;
    } else if (parameter.keyword == "BODY") {
      if (!equals_ignoring_case(parameter.value, "7BIT") &&
          !equals_ignoring_case(parameter.value, "8BITMIME")) {
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
  if (!role_->admit_sender(path, token_transaction)) return;
  // A queued transaction needs room in the spool beyond the reserve
  // (queue/free_space.h); RFC 1870 §6.1 and RFC 3463 4.3.1: a temporary
  // refusal, the client retries later. Token transactions store nothing in
  // the spool.
  if (!token_transaction && context_.spool_space) {
    if (const auto space = context_.spool_space->check(declared_size); !space.enough) {
      spdlog::warn("session {}: MAIL refused: {} bytes free for the spool, reserve {}, size {}",
                   session_id_, space.available, context_.spool_space->reserve(), declared_size);
      mta_metrics::count_rejected(mta_metrics::Rejection::disk_full);
      return reply(452, "4.3.1", "Insufficient system storage");
    }
  }
  transaction.active = true;
  transaction.token = token_transaction;
  if (token_transaction) allow_token_command_lines();
  transaction.sender = path;
  transaction.utf8 = utf8;
  transaction.dsn = std::move(*dsn.dsn);
  reply(250, "2.1.0", "Ok");
}

void Session::command_rcpt(const Command& command) {
  Transaction& transaction = state_.transaction;
  if (!transaction.active) return reply_error(503, "5.5.1", "Need MAIL before RCPT");
  if (state_.transaction.reader) return reply_error(503, "5.5.1", "RCPT not allowed during BDAT");
  if (recipient_limit_reached()) return;
  auto parsed = parse_rcpt_argument(command.argument, state_.transaction.utf8);
  if (!parsed.argument) {
    return reply_error(parsed.error.code, parsed.error.enhanced, parsed.error.text);
  }
  if (transaction.token) {
    // Only the Token Server opens token transactions (SessionRole::admit_mail).
    return role_->token_server()->recipient(parsed.argument->path, parsed.argument->parameters);
  }
  for (const auto& parameter : parsed.argument->parameters) {
    if (!state_.extended() || !is_dsn_rcpt_keyword(parameter.keyword)) {
      return reply_error(555, "5.5.4", "Unsupported parameter " + parameter.keyword);
    }
  }
  RcptDsnResult dsn = parse_rcpt_dsn(parsed.argument->parameters, state_.transaction.utf8);
  if (!dsn.dsn) {
    spdlog::info("session {}: RCPT refused: {}", session_id_, dsn.error.text);
    return reply_error(dsn.error.code, dsn.error.enhanced, dsn.error.text);
  }
  const auto& path = parsed.argument->path;
  message::Mailbox mailbox = path.mailbox;
  if (mailbox.domain.empty()) {
    // RFC 5321 §4.1.1.3: "<Postmaster>" without a domain must be accepted;
    // it is the postmaster of our primary domain.
    mailbox.domain = context_.config().local_domains.front();
  }
  std::string shown = "<" + mailbox.to_string() + ">";
  bool local = !mailbox.domain_is_literal && context_.config().is_local_domain(mailbox.domain);

  if (!role_->admit_recipient(path, shown, local)) return;
  if (!local) {
    // Authenticated submission to another domain: queued for remote delivery.
    add_recipient(mailbox.to_string(), false, *dsn.dsn);
    return reply(250, "2.1.5", "Ok");
  }
  const std::string& delimiters = context_.config().recipient_delimiter;
  // The aliases come before the users, as Postfix's virtual_alias_maps do;
  // a domain's catch-all only after them (local_recipient()).
  if (context_.aliases) {
    context_.aliases->refresh_if_changed(delimiters);
    const auto expansion = context_.aliases->map().expand(mailbox.normalized(), delimiters, false,
                                                          addresses::default_expansion_limits());
    if (expansion.status != addresses::Expansion::Status::not_aliased) {
      return aliased_recipient(shown, expansion, *dsn.dsn);
    }
  }
  // The users file answers at once; a provider's Dovecot (auth/dovecot_userdb.h)
  // may answer later, the session reading nothing meanwhile. alice+news@ is
  // alice's when no user is called so (addresses/local_users.h).
  std::weak_ptr<Session> weak = weak_from_this();
  const auto answer = addresses::lookup_local_user(
      context_.users, mailbox.normalized(), delimiters,
      [weak, mailbox, shown, dsn = *dsn.dsn](const UserAnswer& later) {
        auto session = weak.lock();
        if (session && session->local_recipient(mailbox, shown, later, dsn)) {
          session->resume_reading();
        }
      });
  if (!answer) return wait_for_work();
  local_recipient(mailbox, shown, *answer, *dsn.dsn);
}

bool Session::local_recipient(const message::Mailbox& mailbox, const std::string& shown,
                              const UserAnswer& answer, const queue::RecipientDsn& dsn) {
  switch (answer.status) {
    case UserAnswer::Status::found:
      // Queued with its extension, which delivery puts in Delivered-To.
      add_recipient(addresses::delivery_address(answer.user, mailbox.normalized(),
                                                context_.config().recipient_delimiter),
                    true, dsn);
      reply(250, "2.1.5", "Ok");
      return true;
    case UserAnswer::Status::temporary_failure:
      // The directory could not say: the client tries again later, rather
      // than have mail accepted that may bounce or refused that exists.
      spdlog::info("session {}: {} not looked up: user directory unavailable", session_id_, shown);
      mta_metrics::count_rejected(mta_metrics::Rejection::unverified_recipient);
      reply(451, "4.3.0", shown + ": Temporary failure in user lookup, try again later");
      return true;
    case UserAnswer::Status::unknown:
      break;
  }
  // Nobody of that name: the domain's catch-all, if the aliases have one.
  if (context_.aliases) {
    const auto expansion =
        context_.aliases->map().expand(mailbox.normalized(), context_.config().recipient_delimiter,
                                       true, addresses::default_expansion_limits());
    if (expansion.status != addresses::Expansion::Status::not_aliased) {
      aliased_recipient(shown, expansion, dsn);
      return true;
    }
  }
  // Users of the MX behind stokend need not be in the users file: ask
  // the MX (Postfix's reject_unverified_recipient).
  if (context_.recipient_verifier && context_.routes() &&
      context_.config().recipient_probe.probes(mailbox.domain)) {
    verify_recipient_at_next_hop(mailbox, shown, dsn);
    return false;  // recipient_verified() resumes reading
  }
  mta_metrics::count_rejected(mta_metrics::Rejection::unknown_recipient);
  reply_error(550, "5.1.1", shown + ": Recipient address rejected: user unknown");
  return true;
}

void Session::add_recipient(const std::string& address, bool local,
                            const queue::RecipientDsn& dsn) {
  bool duplicate =
      std::any_of(state_.transaction.recipients.begin(), state_.transaction.recipients.end(),
                  [&](const auto& recipient) { return recipient.address == address; });
  if (!duplicate) state_.transaction.recipients.push_back({address, local, std::nullopt, dsn});
  ++state_.transaction
        .accepted_rcpt_commands;  // a repeated one counts too (recipient_limit_reached)
}

void Session::verify_recipient_at_next_hop(const message::Mailbox& mailbox,
                                           const std::string& shown,
                                           const queue::RecipientDsn& dsn) {
  const Route route = context_.routes()->route_for(mailbox.domain, true);
  std::string address = mailbox.to_string();
  wait_for_work();
  std::weak_ptr<Session> weak = weak_from_this();
  context_.recipient_verifier->verify(address, route.next_hop,
                                      [weak, address, shown, dsn](RecipientCheck check) {
                                        if (auto session = weak.lock())
                                          session->recipient_verified(address, shown, check, dsn);
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
      mta_metrics::count_rejected(mta_metrics::Rejection::unknown_recipient);
      reply_error(550, "5.1.1",
                  shown + ": Recipient address rejected: undeliverable address: " + check.reply);
      break;
    case RecipientCheck::Verdict::unverifiable:
      // Try later rather than accept what may bounce (Postfix's
      // unverified_recipient_tempfail_action default).
      spdlog::info("session {}: {} not verified: {}", session_id_, shown, check.reply);
      mta_metrics::count_rejected(mta_metrics::Rejection::unverified_recipient);
      reply_error(450, "4.1.1",
                  shown + ": Recipient address rejected: unverified address: " + check.reply);
      break;
  }
  resume_reading();
}

void Session::command_data(const Command& command) {
  if (!command.argument.empty()) return reply_error(501, "5.5.4", "DATA takes no argument");
  if (!state_.transaction.active) return reply_error(503, "5.5.1", "Need MAIL before DATA");
  if (state_.transaction.used_bdat) return reply_error(503, "5.5.1", "DATA not allowed after BDAT");
  if (state_.transaction.recipients.empty())
    return reply_error(554, "5.5.1", "No valid recipients");
  state_.transaction.reader.emplace(data_limits());
  phase_ = Phase::data;
  arm_deadline(DeadlineKind::data, context_.config().timeouts.data);
  reply(354, "", "End data with <CR><LF>.<CR><LF>");
}

void Session::command_bdat(const Command& command) {
  // RFC 3030 §2: BDAT chunk-size [SP "LAST"].
  std::string_view argument = command.argument;
  auto space = argument.find(' ');
  auto size = parse_size(argument.substr(0, space));
  bool last = false;
  if (space != std::string_view::npos) {
    if (!equals_ignoring_case(argument.substr(space + 1), "LAST")) size.reset();
    last = true;
  }
  if (!size) {
    // Without a valid size we cannot tell where the chunk ends, so the
    // session cannot stay in step: reply and close.
    reply_error(501, "5.5.4", "Syntax: BDAT size [LAST]");
    return close_after_flush();
  }
  state_.transaction.bdat_remaining = *size;
  state_.transaction.bdat_last = last;
  state_.transaction.bdat_discard = false;
  // The chunk's bytes follow whatever we answer; a refused chunk is still read.
  if (!state_.transaction.active || state_.transaction.recipients.empty()) {
    state_.transaction.bdat_discard = true;
  } else if (!state_.transaction.reader) {
    state_.transaction.used_bdat = true;
    state_.transaction.reader.emplace(data_limits());
    arm_deadline(DeadlineKind::data, context_.config().timeouts.data);
  }
  phase_ = Phase::bdat_chunk;
  if (*size == 0) finish_bdat_chunk();
}

void Session::finish_bdat_chunk() {
  phase_ = Phase::command;
  if (state_.transaction.bdat_discard) {
    state_.transaction.bdat_discard = false;
    if (!state_.transaction.active) return reply_error(503, "5.5.1", "Need MAIL before BDAT");
    return reply_error(554, "5.5.1", "No valid recipients");
  }
  if (state_.transaction.bdat_last) {
    state_.transaction.reader->finish_chunks();
    return finish_message();
  }
  reply(250, "2.0.0", std::to_string(state_.transaction.reader->size()) + " octets received");
}

void Session::finish_message() {
  phase_ = Phase::command;
  arm_deadline(DeadlineKind::none, {});
  DataReader& reader = *state_.transaction.reader;
  if (reader.error() != DataReader::Error::none) return refuse_message(reader.error());
  if (refuse_if_looping(reader)) return;
  if (const std::size_t stripped = reader.nul_octets_stripped(); stripped != 0) {
    spdlog::info("session {}: {} NUL octets stripped from the message", session_id_, stripped);
  }
  std::string message_id = new_message_id();
  message::ReceivedInfo trace;
  trace.helo_name = state_.helo_name;
  trace.client_address = peer_address_;
  trace.by_host = context_.config().hostname;
  trace.protocol = received_protocol();
  trace.id = message_id;
  if (state_.transaction.recipients.size() == 1)
    trace.recipient = state_.transaction.recipients[0].address;
  trace.tls_description = describe_tls(state_.tls_active ? tls_ : nullptr);
  std::string body = reader.take_message();
  role_->inbound_message(body);
  std::string message = message::received_header(trace);
  message.reserve(message.size() + body.size());
  message += body;
  if (state_.transaction.token) {
    // Not queued: smtpd's and cleanup's lines now, the to= lines as each
    // recipient's mailstore answers (token_delivery.cc).
    service_log(Service::smtpd)
        .info("{}: client={}, sasl_method=STOKEN", message_id, logged_client());
    service_log(Service::cleanup)
        .info("{}: message-id=<{}>", message_id, log_lines::printable(logged_message_id(message)));
    service_log(Service::cleanup)
        .info("{}: from=<{}>, size={}, nrcpt={} (token delivery, not queued)", message_id,
              log_lines::printable(state_.transaction.sender.mailbox.to_string()), message.size(),
              state_.transaction.recipients.size());
    return role_->token_server()->deliver(std::move(message_id), std::move(message));
  }
  // The milters of this role see the message before the queue does
  // (session_filter.cc); the Token Server's deliveries above never.
  if (has_milters()) return filter_message(std::move(message_id), std::move(message));
  enqueue(std::move(message_id), std::move(message));
}

bool Session::refuse_if_looping(const DataReader& reader) {
  const std::size_t limit = context_.config().limits.max_hops;
  const std::size_t hops = message::count_header_fields(reader.message(), "Received");
  if (hops <= limit) return false;
  // RFC 5321 §6.3: counting Received fields finds loops; the threshold is
  // "at least 100". Refused here, the loop ends with the hop before us,
  // which bounces the message to its sender; RFC 3463 5.4.6: routing loop.
  spdlog::info("session {}: message refused: {} Received fields, over the limit of {} (mail loop)",
               session_id_, hops, limit);
  mta_metrics::count_rejected(mta_metrics::Rejection::too_many_hops);
  refuse_data({554, "5.4.6",
               "Too many hops: " + std::to_string(hops) + " Received fields, limit " +
                   std::to_string(limit) + " (mail loop)"});
  return true;
}

void Session::enqueue(std::string message_id, std::string message, bool hold) {
  queue::Envelope envelope;
  envelope.sender =
      state_.transaction.sender.is_null ? "" : state_.transaction.sender.mailbox.to_string();
  for (const auto& recipient : state_.transaction.recipients) {
    envelope.recipients.push_back(recipient.address);
    envelope.recipient_dsn.push_back(recipient.dsn);
  }
  // A message without NOTIFY or ORCPT keeps no DSN requests (record_format.h).
  if (std::all_of(envelope.recipient_dsn.begin(), envelope.recipient_dsn.end(),
                  [](const queue::RecipientDsn& dsn) { return dsn == queue::RecipientDsn{}; })) {
    envelope.recipient_dsn.clear();
  }
  envelope.dsn_return = state_.transaction.dsn.ret;
  envelope.envelope_id = state_.transaction.dsn.envelope_id;
  envelope.smtputf8 = state_.transaction.utf8;
  envelope.authenticated_sender = state_.authenticated_user.has_value();
  envelope.hold = hold;  // quarantined by a milter
  std::string recipients;
  for (const auto& address : envelope.recipients) {
    recipients += (recipients.empty() ? "" : ",") + address;
  }
  std::string sender = envelope.sender;
  std::size_t size = message.size();
  // smtpd's client= and cleanup's message-id= lines, once the queue has it.
  std::string client = logged_client();
  if (state_.authenticated_user) {
    client += ", sasl_method=" + log_lines::printable(sasl_mechanism_) +
              ", sasl_username=" + log_lines::printable(*state_.authenticated_user);
  }
  std::string header_id = log_lines::printable(logged_message_id(message));
  reset_transaction();
  wait_for_work();

  std::weak_ptr<Session> weak = weak_from_this();
  context_.queue.enqueue(
      std::move(envelope), std::move(message),
      [weak, message_id, sender, recipients, size, role = metrics_role(),
       client = std::move(client), header_id = std::move(header_id)](queue::EnqueueResult result) {
        auto session = weak.lock();
        if (!result) {
          spdlog::error("message {}: cannot be queued: {}", message_id, result.error.message());
          mta_metrics::count_rejected(queue::is_out_of_space(result.error)
                                          ? mta_metrics::Rejection::disk_full
                                          : mta_metrics::Rejection::local_error);
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
                     recipients, size, session && session->state_.tls_active ? "yes" : "no",
                     session && session->state_.authenticated_user
                         ? *session->state_.authenticated_user
                         : "-");
        mta_metrics::count_accepted(role);  // queued, whether or not the client waited
        service_log(Service::smtpd).info("{}: client={}", result.id, client);
        service_log(Service::cleanup).info("{}: message-id=<{}>", result.id, header_id);
        if (!session) return;
        ++session->messages_accepted_;
        session->reply(250, "2.0.0", "Ok: queued as " + result.id);
        session->resume_reading();
      });
}

}  // namespace stokend::server
