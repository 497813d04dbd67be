// One outbound SMTP (RFC 5321) or LMTP (RFC 2033) connection, driven on the
// libevent loop: connect, greeting, EHLO/LHLO (HELO fallback for SMTP),
// STARTTLS (RFC 3207), then any number of mail transactions, each followed
// by RSET so the connection can be reused, and QUIT on close.
//
// Contract:
// - Every method is called on the loop thread and returns at once; results
//   come through the callback, always later on the loop thread, never from
//   inside the call that started the work. Exactly one callback per request,
//   unless the client is destroyed first (destruction abandons work
//   silently; close() does not, see below).
// - One request at a time: connect() once, then send_transaction() or
//   send_command() only while is_idle(). A request made while busy is
//   answered with a failure.
// - Every wait has a deadline (ClientTimeouts); on expiry, on a lost
//   connection, on a malformed or over-long reply line, the connection is
//   closed and the work in progress fails (transactions: see transaction.h).
// - With PIPELINING (RFC 2920) MAIL, every RCPT and DATA go out in one write
//   and replies are matched in order; without it, one command at a time, and
//   nothing more is sent once MAIL or every RCPT has been refused.
// - After DATA, SMTP gives one reply for all accepted recipients; LMTP gives
//   one per accepted recipient, in RCPT order (RFC 2033 §4.2), and so does
//   SMTP for an envelope with reply_per_recipient (transaction.h).
// - DSN parameters (RFC 3461, transaction.h) are sent only to a server that
//   offers DSN; the result says whether it did.
// - Objects are created by create() and held by shared_ptr; callbacks keep
//   the client alive while they run, so a caller may drop its reference from
//   inside a callback.
//
// The implementation is in three files by job: smtp_client.cc (the
// connection, replies, deadlines, closing), smtp_client_setup.cc (greeting,
// EHLO/LHLO, STARTTLS) and smtp_client_transaction.cc (mail transactions and
// raw commands); smtp_client_auth.cc has the SASL AUTH a smarthost asks for.
#pragma once

#include <chrono>
#include <cstddef>
#include <deque>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "common/deferred_calls.h"
#include "common/destination.h"
#include "common/event_handles.h"
#include "common/timer.h"
#include "common/unique_fd.h"
#include "mta/client/capabilities.h"
#include "mta/client/client_settings.h"
#include "mta/client/dot_stuffer.h"
#include "mta/client/reply.h"
#include "mta/client/transaction.h"

namespace stokend::client {

class SmtpClient : public std::enable_shared_from_this<SmtpClient> {
 public:
  using ConnectCallback = std::function<void(std::optional<Failure>)>;
  using TransactionCallback = std::function<void(TransactionResult)>;
  using CommandCallback = std::function<void(CommandResult)>;

  static std::shared_ptr<SmtpClient> create(event_base* base, Destination destination,
                                            ClientSettings settings);
  // Use create(): the client must be owned by a shared_ptr.
  SmtpClient(event_base* base, Destination destination, ClientSettings settings);
  ~SmtpClient();
  SmtpClient(const SmtpClient&) = delete;
  SmtpClient& operator=(const SmtpClient&) = delete;

  // Connects, reads the greeting, says EHLO/LHLO, does STARTTLS as the
  // destination's TLS policy asks, and says EHLO/LHLO again over TLS. The
  // callback gets no failure when the connection is ready for transactions.
  void connect(ConnectCallback done);

  // One mail transaction. The message is the complete message with CRLF line
  // endings; it is dot-stuffed here.
  void send_transaction(Envelope envelope, std::shared_ptr<const std::string> message,
                        TransactionCallback done);

  // Sends one command line (no CR or LF in it) and returns the reply,
  // whatever its code; the connection stays usable. For extensions built on
  // top (AUTH and its continuation lines).
  void send_command(std::string line, CommandCallback done);

  // Idle: says QUIT and closes once the 221 (or the quit deadline) comes.
  // Busy: closes at once and fails the work in progress through its
  // callback, called from inside close().
  void close();
  // Closes at once without QUIT, also while a QUIT is awaited, dropping the
  // self-reference that keeps a quitting client alive (daemon exit, once the
  // event loop no longer runs). Work in progress is abandoned silently.
  void abort();
  bool is_quitting() const;

  // Connected, session set up, no request in progress: ready for the next.
  bool is_idle() const;
  bool is_closed() const { return phase_ == Phase::closed; }
  const Capabilities& capabilities() const { return capabilities_; }
  const Destination& destination() const { return destination_; }
  bool tls_active() const { return tls_active_; }
  std::string tls_description() const;  // "TLSv1.3 TLS_AES_256_GCM_SHA384", empty without TLS
  std::size_t transactions_completed() const { return transactions_completed_; }
  // Set by whoever authenticated the session (destination().session_owner
  // says who it should be): a pooled connection that is not yet
  // authenticated needs AUTH before its first transaction.
  bool authenticated() const { return authenticated_; }
  void set_authenticated() { authenticated_ = true; }

 private:
  enum class Phase {
    created,
    connecting,     // TCP or unix connect in progress
    setting_up,     // greeting, EHLO/LHLO/HELO, STARTTLS
    tls_handshake,  // after "220" to STARTTLS
    ready,          // idle
    resetting,      // RSET after a transaction; requests wait for its reply
    busy,           // a transaction or a command is in progress
    quitting,       // QUIT sent
    closed,
  };

  struct AwaitedReply {
    const char* command;  // for messages: "MAIL", "RCPT", "end of data", ...
    std::chrono::milliseconds timeout;
    std::function<void(const Reply&)> handler;
  };

  struct Transaction {
    Envelope envelope;
    std::shared_ptr<const std::string> message;
    TransactionCallback done;
    TransactionResult result;
    std::vector<bool> outcome_final;    // per recipient
    std::vector<std::size_t> accepted;  // recipients accepted at RCPT, in RCPT order
    bool started = false;
    bool pipelined = false;
    bool mail_refused = false;
    std::size_t final_replies_expected = 0;
    std::optional<DotStuffer> stuffer;
  };

  struct Command {
    std::string line;
    CommandCallback done;
    bool started = false;
  };

  // libevent callbacks
  static void on_read(bufferevent*, void* self);
  static void on_write(bufferevent*, void* self);
  static void on_event(bufferevent*, short events, void* self);
  void on_deadline();

  void install_bufferevent(bufferevent* raw);
  void release_bufferevent();
  void process_input();
  void handle_reply(Reply reply);
  void write_line(const std::string& line);
  void expect(const char* command, std::chrono::milliseconds timeout,
              std::function<void(const Reply&)> handler);

  // Session setup
  void expect_greeting();
  void on_greeting(const Reply& reply);
  void send_hello();
  void on_hello(const Reply& reply);
  void on_helo(const Reply& reply);
  void after_hello();
  void on_starttls(const Reply& reply);
  void start_tls();
  void tls_established();
  // The hello (and TLS) are done: AUTH when the destination has
  // credentials (smtp_client_auth.cc), then ready.
  void finish_setup();
  void become_ready();

  // SASL AUTH to a smarthost (RFC 4954), smtp_client_auth.cc
  void start_authentication();
  void on_auth_reply(const Reply& reply, int step);

  // Transaction
  void begin_transaction();
  std::string recipient_command(std::size_t index) const;
  void send_recipient(std::size_t index);
  void send_data_command();
  void on_mail_reply(const Reply& reply);
  void on_recipient_reply(std::size_t index, const Reply& reply);
  void on_data_reply(const Reply& reply);
  void feed_data();
  void on_final_reply(std::size_t index, const Reply& reply);
  bool replies_per_recipient() const;  // of the transaction in progress
  void settle(std::size_t recipient, const Reply& reply);
  void finish_transaction(bool reusable);
  void on_reset_reply(const Reply& reply);

  // Raw command
  void begin_command();
  void on_command_reply(const Reply& reply);

  void start_waiting_work();
  void on_quit_reply();
  // Closes the connection and fails whatever was in progress.
  void fail(Failure failure);
  void teardown();
  void post_failure(Failure failure, ConnectCallback done);

  event_base* base_;
  Destination destination_;
  ClientSettings settings_;
  std::string peer_;  // destination_.describe(), for messages

  Phase phase_ = Phase::created;
  UniqueFd socket_;  // owned here until TLS hands it to the bufferevent
  BuffereventPtr connection_;
  SSL* tls_ = nullptr;  // owned by connection_ once TLS starts
  bool tls_active_ = false;
  bool tried_helo_ = false;
  bool greeted_ = false;  // the 220 greeting arrived (implicit TLS: after the handshake)
  bool authenticated_ = false;
  Capabilities capabilities_;
  ReplyParser parser_;
  std::deque<AwaitedReply> awaited_;
  Timer deadline_;
  DeferredCalls deferred_;
  std::size_t transactions_completed_ = 0;

  ConnectCallback connect_done_;
  std::unique_ptr<Transaction> transaction_;
  std::optional<Command> command_;
  // Keeps the client alive while QUIT is answered after its owner let go.
  std::shared_ptr<SmtpClient> self_while_quitting_;
};

}  // namespace stokend::client
