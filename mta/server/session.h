// One SMTP session on one connection: the RFC 5321 state machine for the MX
// and submission roles, with STARTTLS (RFC 3207), implicit TLS (RFC 8314),
// AUTH PLAIN/LOGIN (RFC 4954), PIPELINING (RFC 2920), CHUNKING (RFC 3030)
// and DSN (RFC 3461: RET, ENVID, NOTIFY and ORCPT are kept with the queued
// message; dsn_parameters.h);
// on the submission role also the Token Server of the Submission Token
// extension (rfcdraft/): LHLO (LMTP semantics, RFC 2033), AUTH STOKEN,
// RCPT ... STOKEN= MYSTOKEN=, the EHLO + MAIL ... SYNC variant, synchronous
// per-recipient delivery, and GENSTOKEN / REVSTOKEN for logged-in users.
//
// Contract:
// - Input is processed in order; while the session waits for work on another
//   thread (password check, mailstore commit) it reads nothing more, so
//   pipelined commands are answered in order after it.
// - "250 ... queued" is sent only once the queue has the message durably
//   (queue/spool.h: written and synced); delivery follows at once.
// - A token transaction is never queued: each recipient's reply comes after
//   the mailstore committed it (token_delivery.h). A token session never
//   relays, never uses GENSTOKEN, and sends only as the token's remote address.
// - Input that breaks the rules (a bad command line, NUL octets, a message
//   the data reader refuses, RCPT past max_recipients) gets a specific reply
//   and a log line and changes nothing on disk (session_input.cc).
// - Every phase has a deadline (idle, command line, DATA, TLS handshake); on
//   expiry the client gets 421 4.4.2 and the connection closes.
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
#include "message/address.h"
#include "mta/server/data_reader.h"
#include "mta/server/dsn_parameters.h"
#include "mta/server/line_reader.h"
#include "mta/server/server_context.h"
#include "mta/server/smtp_command.h"
#include "mta/server/token_commands.h"
#include "mta/server/token_delivery.h"

namespace stokend::server {

class Session : public std::enable_shared_from_this<Session> {
 public:
  Session(ServerContext& context, const ListenerConfig& listener, UniqueFd socket,
          std::string peer_address);
  ~Session();
  Session(const Session&) = delete;
  Session& operator=(const Session&) = delete;

  // Sends the greeting (or starts the TLS handshake on an implicit-TLS port).
  void start();
  // The daemon is stopping: close now if idle, or after the current work.
  void request_shutdown();

  const std::string& peer_address() const { return peer_address_; }

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
  enum class AuthMechanism { none, plain, login, stoken };
  enum class DeadlineKind { none, command, data };

  struct AcceptedRecipient {
    std::string address;  // local: the users-file key; remote: as written
    bool local = false;
    std::optional<TokenRecipient> token;  // in a token transaction
    queue::RecipientDsn dsn{};            // NOTIFY, ORCPT (RFC 3461)
  };

  // Who a token session authenticated as with AUTH STOKEN.
  struct TokenLogin {
    std::string recipient;  // the local user the token delivers to
    tokens::TokenCheck check;
  };

  struct Transaction {
    bool active = false;  // MAIL accepted
    bool token = false;   // a token transaction: synchronous, one reply per recipient
    message::Path sender;
    bool utf8 = false;
    MailDsn dsn;  // RET, ENVID (RFC 3461)
    std::vector<AcceptedRecipient> recipients;
    // RCPT commands answered 250, repeats included: what max_recipients
    // limits (RFC 5321 §4.5.3.1.8), as a repeat costs a command all the same.
    std::size_t accepted_rcpt_commands = 0;
    bool recipient_limit_logged = false;
    bool used_bdat = false;
    std::optional<DataReader> reader;
    std::uint64_t bdat_remaining = 0;  // bytes left in the current chunk
    bool bdat_last = false;
    bool bdat_discard = false;  // chunk refused: read and drop its bytes
  };

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
  void command_mail(const Command& command);
  void command_rcpt(const Command& command);
  void add_recipient(const std::string& address, bool local, const queue::RecipientDsn& dsn);
  void verify_recipient_at_next_hop(const message::Mailbox& mailbox, const std::string& shown,
                                    const queue::RecipientDsn& dsn);
  void recipient_verified(const std::string& address, const std::string& shown,
                          const RecipientCheck& check, const queue::RecipientDsn& dsn);
  void command_data(const Command& command);
  void command_bdat(const Command& command);
  void command_rset();
  void command_starttls(const Command& command);
  void command_lhlo(const Command& command);
  std::vector<std::string> greeting_lines() const;
  void command_auth(const Command& command);
  void command_genstoken(const Command& command);
  void command_revstoken(const Command& command);
  // GENSTOKEN / REVSTOKEN: checks who may use them here, parses the
  // arguments and fills in the login's address; replies itself on failure.
  std::optional<TokenCommandArguments> token_command_arguments(
      const Command& command, TokenCommandParseResult (*parse)(std::string_view));
  void auth_stoken(const std::string& response);
  // RCPT in a token transaction (STOKEN / MYSTOKEN); replies itself.
  void token_recipient(const message::Path& path, const std::vector<EsmtpParameter>& parameters);
  void auth_continue(const std::string& line);
  // Sends a 334 challenge; the next line is the client's SASL response.
  void ask_sasl_response(std::string_view challenge);
  void auth_verify(std::string login, std::string password);
  void auth_finished(bool success, const std::string& login);

  // session_input.cc: refused input, each with its reply and log line.
  void refuse_line(LineReader::Status status);   // any status but need_more and line
  void refuse_message(DataReader::Error error);  // at the end of DATA or BDAT LAST
  // At max_recipients: replies 452 4.5.3 and returns true.
  bool recipient_limit_reached();
  DataReader::Limits data_limits() const;

  void finish_bdat_chunk();
  void finish_message();
  void enqueue(std::string message_id, std::string message);
  void deliver_with_tokens(std::string message_id, std::string message);
  // Inbound mail: Submission-Token fields into the recipients' wallets
  // (tokens/harvest.h), and out of the message when so configured.
  void harvest_tokens(std::string& body);

  void start_tls();
  void tls_established();

  void reply(int code, std::string_view enhanced, std::string_view text);
  void reply_lines(int code, const std::vector<std::string>& lines);
  void reply_line(const std::string& line);  // a complete reply line, without CRLF
  // A reply that counts towards the error limit; closes the session when the
  // limit is reached (RFC 5321 §4.5.3.1 lets the server protect itself).
  void reply_error(int code, std::string_view enhanced, std::string_view text);
  void count_error();  // the error limit part of reply_error
  void close_after_flush();
  void close_now();
  void resume_reading();
  void wait_for_work();
  void update_deadline();
  void arm_deadline(DeadlineKind kind, std::chrono::milliseconds timeout);
  void reset_transaction();
  void reset_session_state();  // after STARTTLS (RFC 3207 §4.2)

  std::string received_protocol() const;

  ServerContext& context_;
  const ListenerConfig& listener_;
  UniqueFd socket_;  // owned here until TLS hands it to the bufferevent
  BuffereventPtr connection_;
  SSL* tls_ = nullptr;  // owned by connection_ once TLS starts
  std::string peer_address_;
  std::string session_id_;
  std::chrono::steady_clock::time_point started_;

  Phase phase_ = Phase::command;
  LineReader line_reader_;
  std::string helo_name_;
  bool said_helo_ = false;
  bool extended_ = false;  // EHLO rather than HELO
  bool lmtp_ = false;      // LHLO: LMTP semantics, the Token Server
  bool tls_active_ = false;
  std::optional<std::string> authenticated_user_;
  std::optional<TokenLogin> token_login_;
  AuthMechanism auth_mechanism_ = AuthMechanism::none;
  std::string auth_login_;  // LOGIN mechanism: the user name, between steps
  std::size_t auth_failures_ = 0;
  std::size_t error_count_ = 0;
  std::size_t messages_accepted_ = 0;
  bool shutdown_requested_ = false;
  Transaction transaction_;

  EventPtr deadline_timer_;
  DeadlineKind deadline_kind_ = DeadlineKind::none;
  EventPtr auth_delay_timer_;
  bool pending_auth_success_ = false;
};

}  // namespace stokend::server
