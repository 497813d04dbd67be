// One SMTP session on one connection: the session core, which runs the
// RFC 5321 state machine for every listener role, with STARTTLS (RFC 3207),
// implicit TLS (RFC 8314), PIPELINING (RFC 2920), CHUNKING (RFC 3030) and
// DSN (RFC 3461: RET, ENVID, NOTIFY and ORCPT are kept with the queued
// message; dsn_parameters.h). Where the roles differ it asks its role piece
// (session_role.h): MX (mx_role.cc), submission with AUTH PLAIN/LOGIN
// (RFC 4954) and GENSTOKEN/REVSTOKEN (submission_role.cc), and on submission
// the Token Server of the Submission Token extension (rfcdraft/; LHLO,
// AUTH STOKEN, RCPT ... STOKEN= MYSTOKEN=, the EHLO + MAIL ... SYNC variant,
// synchronous per-recipient delivery: token_server.cc).
//
// The core's files: session.cc (connection, TLS, input, replies, phases and
// deadlines, the greetings), session_transaction.cc (MAIL, RCPT, DATA, BDAT,
// queueing), session_input.cc (refused input).
//
// Contract:
// - Input is processed in order; while the session waits for work on another
//   thread (password check, mailstore commit) it reads nothing more, so
//   pipelined commands are answered in order after it.
// - "250 ... queued" is sent only once the queue has the message durably
//   (queue/message_intake.h); delivery follows at once.
// - A token transaction is never queued: each recipient's reply comes after
//   the mailstore committed it (token_delivery.h). A token session never
//   relays, never uses GENSTOKEN, and sends only as the token's remote address.
// - Input that breaks the rules (a bad command line, NUL octets, a message
//   the data reader refuses, RCPT past max_recipients) gets a specific reply
//   and a log line and changes nothing on disk (session_input.cc).
// - Every phase has a deadline (idle, command line, DATA, TLS handshake); on
//   expiry the client gets 421 4.4.2 and the connection closes.
// - After STARTTLS the session forgets what the client said in plaintext
//   (RFC 3207 §4.2): the greeting, the transaction, an AUTH exchange, and
//   any bytes pipelined after the STARTTLS command.
// - A session is owned by the SessionRegistry; it removes itself from there
//   when the connection ends. Callbacks hold a shared_ptr while they run.
#pragma once

#include <chrono>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "common/event_handles.h"
#include "common/unique_fd.h"
#include "mta/message_filter.h"
#include "mta/mta_metrics.h"
#include "mta/server/data_reader.h"
#include "mta/server/line_reader.h"
#include "mta/server/server_context.h"
#include "mta/server/session_core.h"
#include "mta/server/session_role.h"
#include "mta/server/smtp_command.h"

namespace stokend::server {

class Session : public SessionCore, public std::enable_shared_from_this<Session> {
 public:
  Session(const ServerContext& context, const ListenerConfig& listener, UniqueFd socket,
          std::string peer_address);
  ~Session() override;
  Session(const Session&) = delete;
  Session& operator=(const Session&) = delete;

  // Sends the greeting (or starts the TLS handshake on an implicit-TLS port).
  void start();
  // The daemon is stopping: close now if idle, or after the current work.
  void request_shutdown();

  const std::string& peer_address() const { return peer_address_; }

  // SessionCore: what the role pieces use.
  const std::string& id() const override { return session_id_; }
  ServerContext& context() override { return context_; }
  SessionState& state() override { return state_; }
  void reply(int code, std::string_view enhanced, std::string_view text) override;
  // A reply that counts towards the error limit; closes the session when the
  // limit is reached (RFC 5321 §4.5.3.1 lets the server protect itself).
  void reply_error(int code, std::string_view enhanced, std::string_view text) override;
  void reply_lines(int code, const std::vector<std::string>& lines) override;
  void reply_line(const std::string& line) override;
  std::vector<std::string> greeting_lines() const override;
  bool starttls_offered() const override;
  void allow_token_command_lines() override;
  void wait_for_work() override;
  void resume_reading() override;
  void reset_transaction() override;
  void message_accepted() override { ++messages_accepted_; }
  void ask_sasl_response(std::string_view challenge) override;
  void authentication_succeeded(const std::string& login) override;
  void authentication_failed(const std::string& login) override;
  std::weak_ptr<SessionCore> weak() override;

 private:
  enum class Phase {
    command,        // reading command lines
    auth_response,  // reading a SASL continuation line
    data,           // reading DATA content
    bdat_chunk,     // reading the bytes of a BDAT chunk
    waiting,        // work in progress elsewhere; input stays buffered
    tls_starting,   // 220 sent for STARTTLS, waiting for it to be flushed
    tls_handshake,  // TLS handshake in progress
    closing,        // last reply being flushed, then close
  };
  enum class DeadlineKind { none, command, data };

  // libevent callbacks
  static void on_read(bufferevent*, void* self);
  static void on_write(bufferevent*, void* self);
  static void on_event(bufferevent*, short events, void* self);
  static void on_deadline(evutil_socket_t, short, void* self);
  static void on_auth_delay(evutil_socket_t, short, void* self);

  void install_bufferevent(bufferevent* raw);
  void process_input();
  void handle_line(const std::string& line);
  void handle_command(const Command& command);

  void command_helo(const Command& command, bool extended);
  void command_starttls(const Command& command);
  void command_rset();

  // session_transaction.cc
  void command_mail(const Command& command);
  void command_rcpt(const Command& command);
  void add_recipient(const std::string& address, bool local, const queue::RecipientDsn& dsn);
  // Answers RCPT for a local mailbox once the users answered; false when the
  // next hop is asked on (recipient_verified() then resumes reading).
  bool local_recipient(const message::Mailbox& mailbox, const std::string& shown,
                       const UserAnswer& answer, const queue::RecipientDsn& dsn);
  // session_aliases.cc: RCPT for an address of the aliases map (or a
  // domain's catch-all): its expansion, or the 4xx that stops it.
  void aliased_recipient(const std::string& shown, const addresses::Expansion& expansion,
                         const queue::RecipientDsn& dsn);
  void verify_recipient_at_next_hop(const message::Mailbox& mailbox, const std::string& shown,
                                    const queue::RecipientDsn& dsn);
  void recipient_verified(const std::string& address, const std::string& shown,
                          const RecipientCheck& check, const queue::RecipientDsn& dsn);
  void command_data(const Command& command);
  void command_bdat(const Command& command);
  void finish_bdat_chunk();
  void finish_message();
  void enqueue(std::string message_id, std::string message, bool hold = false);

  // session_filter.cc: the milters of this listener's role, between the
  // end of the data and the queue.
  bool has_milters() const;
  void filter_message(std::string message_id, std::string message);
  void message_filtered(const std::string& message_id, FilterVerdict verdict);
  std::uint16_t peer_port() const;

  // session_input.cc: refused input, each with its reply and log line.
  void refuse_line(LineReader::Status status);   // any status but need_more and line
  void refuse_message(DataReader::Error error);  // at the end of DATA or BDAT LAST
  // Refuses the message just read, once per recipient in a token transaction.
  void refuse_data(const Reply& refusal);
  // RFC 5321 §6.3: true (and the message refused) when it carries more
  // Received fields than limits.max_hops, a mail loop.
  bool refuse_if_looping(const DataReader& reader);
  // At max_recipients: replies 452 4.5.3 and returns true.
  bool recipient_limit_reached();
  DataReader::Limits data_limits() const;
  std::string received_protocol() const;
  bool token_server_logged_in() const;  // AUTH STOKEN succeeded in this session

  void start_tls();
  void tls_established();

  void count_error();                      // the error limit part of reply_error
  mta_metrics::Role metrics_role() const;  // the listener's, for mta_metrics.h
  void close_after_flush();
  void close_now();
  void update_deadline();
  void arm_deadline(DeadlineKind kind, std::chrono::milliseconds timeout);
  void reset_session_state();  // after STARTTLS (RFC 3207 §4.2)

  // A copy taken at accept: the configuration generation this session
  // started with stays in force for it across a reload.
  ServerContext context_;
  const ListenerConfig& listener_;
  UniqueFd socket_;  // owned here until TLS hands it to the bufferevent
  BuffereventPtr connection_;
  SSL* tls_ = nullptr;  // owned by connection_ once TLS starts
  std::string peer_address_;
  std::string session_id_;
  std::chrono::steady_clock::time_point started_;

  Phase phase_ = Phase::command;
  LineReader line_reader_;
  SessionState state_;
  std::unique_ptr<SessionRole> role_;
  std::size_t auth_failures_ = 0;
  std::size_t error_count_ = 0;
  std::size_t messages_accepted_ = 0;
  bool shutdown_requested_ = false;

  EventPtr deadline_timer_;
  DeadlineKind deadline_kind_ = DeadlineKind::none;
  EventPtr auth_delay_timer_;

  // The command being answered, for the log's Postfix-shaped lines
  // (session_log.h): a refusal of MAIL or RCPT is a reject line.
  Verb current_verb_ = Verb::unknown;
  std::string current_verb_text_;
  std::string current_path_;    // the path a MAIL or RCPT command names
  std::string sasl_mechanism_;  // of the last AUTH command
  std::string logged_client() const;
  // "after EHLO": the command being answered, uppercase, or CONNECT.
  std::string logged_command() const;
  void log_reject(int code, std::string_view enhanced, std::string_view text);
};

}  // namespace stokend::server
