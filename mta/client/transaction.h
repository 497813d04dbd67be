// What the client is asked to send and what it reports back: the envelope of
// one mail transaction, per-recipient results, and connection failures.
//
// Contract: a TransactionResult has one RecipientResult per envelope
// recipient, in envelope order. A result decided by a peer reply carries that
// reply's code; a result decided here (connection failure, local policy) has
// reply_code 0 and an enhanced code chosen here (RFC 3463). A connection
// failure turns every recipient whose outcome was not yet final into a
// temporary failure; recipients already refused at RCPT, or (LMTP) already
// answered after DATA, keep their result.
#pragma once

#include <optional>
#include <string>
#include <vector>

#include "mta/client/reply.h"

namespace stokend::client {

struct Envelope {
  std::string sender;                   // the reverse-path mailbox without brackets; empty for "<>"
  std::vector<std::string> recipients;  // mailboxes without brackets
  // Ask for BODY=8BITMIME (RFC 6152) when the server offers it. When it
  // does not, the message is sent as it is (no conversion).
  bool eight_bit_body = false;
  // Further ESMTP parameters, sent as given after the ones the client adds:
  // for MAIL (e.g. "SYNC"), and per recipient in envelope order (e.g.
  // "STOKEN=... MYSTOKEN=..."; empty vector or empty string: none).
  std::string mail_parameters;
  std::vector<std::string> recipient_parameters;
  // The server answers the end of data once per accepted recipient, as LMTP
  // does (RFC 2033 §4.2), although the session is SMTP: the Submission Token
  // extension's EHLO form asks for it with MAIL ... SYNC (rfcdraft/ §10).
  bool reply_per_recipient = false;
  // DSN parameters (RFC 3461 §4), sent only when the server offers DSN (a
  // server without it would refuse them, §5.2.3 says to drop them): for
  // MAIL (RET=, ENVID=) and per recipient in envelope order (NOTIFY=,
  // ORCPT=; empty vector or empty string: none).
  std::string dsn_mail_parameters;
  std::vector<std::string> dsn_recipient_parameters;
};
// An envelope with CR, LF or NUL in an address or parameter is refused
// before anything is sent (it could smuggle a command): every recipient
// fails permanently with 5.5.4.
// SMTPUTF8 (RFC 6531 §3.4) is added to MAIL by the client whenever an
// address is not ASCII; a server without SMTPUTF8 then fails the transaction.

enum class DeliveryStatus { delivered, temporary, permanent };

struct RecipientResult {
  std::string address;
  DeliveryStatus status = DeliveryStatus::temporary;
  int reply_code = 0;
  std::string enhanced_code;
  std::string text;

  // "550 5.1.1 text" as a reply line; a result decided here (no reply
  // code) gets the code of its class (250, 451, 550; RFC 3463).
  std::string reply_line() const;
};

// Why a connection (or one step on it) failed before a usable reply.
struct Failure {
  std::string enhanced_code;   // e.g. "4.4.1" no answer, "4.4.2" lost, "4.7.4" TLS not offered
  std::string reason;          // names the peer and the step
  int reply_code = 0;          // the peer's reply when a reply caused the failure
  bool tls_failed = false;     // the STARTTLS handshake failed (a caller may retry without TLS)
  bool hello_refused = false;  // EHLO/LHLO got a 5xx (a caller may try the other greeting)
};

// A reply that ends the connection's usefulness is always reported as a
// temporary failure: the enhanced code keeps its subject and detail but
// takes class 4 (RFC 3463 §3.1). Without an enhanced code, `fallback`.
std::string as_temporary(const std::string& enhanced_code, const char* fallback);

struct TransactionResult {
  std::vector<RecipientResult> recipients;
  std::optional<Failure> connection_failure;
  // The end of data was handed to the connection: when the connection then
  // fails, the peer may have the message (retrying may duplicate it).
  bool message_sent = false;
  // The server offered DSN (RFC 3461), so it got the DSN parameters and
  // reports from here on.
  bool dsn_offered = false;
  // The server that answered, "host[address]:port", for the log's relay=;
  // "none" when no server answered.
  std::string relay = "none";

  bool all_delivered() const;
};

struct CommandResult {
  std::optional<Reply> reply;      // set when the peer answered
  std::optional<Failure> failure;  // set when it did not
};

}  // namespace stokend::client
