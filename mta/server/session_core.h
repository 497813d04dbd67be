// What the role pieces of a session (session_role.h: MX, submission, and the
// Token Server inside submission) see of the session core (session.h): the
// state of the conversation and the few things they may ask of it.
//
// Contract:
// - Everything here runs on the loop thread.
// - A piece that hands work elsewhere calls wait_for_work() first, so that
//   nothing more is read, and resume_reading() when its reply is sent; its
//   completion locks weak() before touching the session, which may be gone.
// - reply_error() counts towards the error limit and may close the session
//   (RFC 5321 §4.5.3.1); reply() does not.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "message/address.h"
#include "mta/server/data_reader.h"
#include "mta/server/dsn_parameters.h"
#include "mta/server/token_delivery.h"
#include "queue/queued_message.h"

namespace stokend::server {

struct ServerContext;

// Which greeting the client last sent: HELO, EHLO, or LHLO (the Token
// Server's LMTP, RFC 2033). None at the start and after STARTTLS.
enum class Greeting { none, helo, ehlo, lhlo };

struct AcceptedRecipient {
  std::string address;  // local: the users-file key; remote: as written
  bool local = false;
  std::optional<TokenRecipient> token;  // in a token transaction
  queue::RecipientDsn dsn{};            // NOTIFY, ORCPT (RFC 3461)
};

// One mail transaction, from MAIL to the end of the data (or RSET).
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

struct SessionState {
  Greeting greeting = Greeting::none;
  std::string helo_name;
  bool tls_active = false;
  std::optional<std::string> authenticated_user;  // AUTH PLAIN or LOGIN
  Transaction transaction;

  bool said_helo() const { return greeting != Greeting::none; }
  bool extended() const { return greeting == Greeting::ehlo || greeting == Greeting::lhlo; }
  bool lmtp() const { return greeting == Greeting::lhlo; }
};

class SessionCore {
 public:
  virtual ~SessionCore() = default;

  virtual const std::string& id() const = 0;  // for log lines
  virtual ServerContext& context() = 0;
  virtual SessionState& state() = 0;

  virtual void reply(int code, std::string_view enhanced, std::string_view text) = 0;
  virtual void reply_error(int code, std::string_view enhanced, std::string_view text) = 0;
  virtual void reply_lines(int code, const std::vector<std::string>& lines) = 0;
  virtual void reply_line(const std::string& line) = 0;  // a complete line, without CRLF

  // The EHLO/LHLO lines every greeting shares (host name, then extensions),
  // and whether STARTTLS is offered now.
  virtual std::vector<std::string> greeting_lines() const = 0;
  virtual bool starttls_offered() const = 0;
  // The Token Server's commands carry tokens: longer lines from here on.
  virtual void allow_token_command_lines() = 0;

  virtual void wait_for_work() = 0;
  virtual void resume_reading() = 0;
  virtual void reset_transaction() = 0;
  virtual void message_accepted() = 0;  // counted in the session's end log line

  // SASL (RFC 4954 §4): sends a 334 challenge; the next line goes to the
  // role's auth_response(). authentication_failed() answers 535 after the
  // growing delay (and 421 after max_auth_failures); the caller has called
  // wait_for_work().
  virtual void ask_sasl_response(std::string_view challenge) = 0;
  virtual void authentication_succeeded(const std::string& login) = 0;
  virtual void authentication_failed(const std::string& login) = 0;

  virtual std::weak_ptr<SessionCore> weak() = 0;
};

}  // namespace stokend::server
