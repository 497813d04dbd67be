// The text of the log lines operators' tools parse, in Postfix's shape
// (pflogsumm's regexes, fail2ban's filter.d/postfix.conf; README "Logs"):
//
//   connect from unknown[192.0.2.1]
//   QUEUEID: client=unknown[192.0.2.1]
//   QUEUEID: to=<a@b>, relay=mx.b[192.0.2.7]:25, delay=0.12, delays=0/0.01/0/0.11,
//            dsn=2.0.0, status=sent (250 2.0.0 Ok)
//   NOQUEUE: reject: RCPT from unknown[192.0.2.1]: 550 5.1.1 <a@b>: Recipient
//            address rejected: user unknown; from=<c@d> to=<a@b> proto=ESMTP helo=<e>
//
// Contract: pure functions, no I/O. Every piece of text that came from a
// peer (a HELO name, an address, a reply) is made printable first: a control
// octet becomes '?', so a peer can never start a forged line of its own.
// IPv6 addresses are bracketed like IPv4 ones ("unknown[::1]",
// "[::1]:25" where a port follows), as Postfix writes them.
#pragma once

#include <string>
#include <string_view>

namespace stokend::log_lines {

// Control octets (and DEL) as '?'; everything else as it was.
std::string printable(std::string_view text);

// "name[address]", the way Postfix names a client; "unknown" when the name
// is empty (stokend looks up no client names).
std::string client(std::string_view address, std::string_view name = {});

// "host[address]:port" (relay=); "[address]:port" without a host name.
std::string endpoint(std::string_view host, std::string_view address, unsigned port);

// A duration in seconds as Postfix logs delay= and delays=: two decimals at
// most, trailing zeros dropped ("0", "0.12", "3.5", "72").
std::string seconds(double value);

// The RFC 3463 code of a reply ("250 2.1.5 Ok" -> "2.1.5"); without one,
// the class of the reply code with .0.0 ("451 busy" -> "4.0.0"), and "4.0.0"
// for text that has no reply code at all (a connection failure) or one of
// another class.
std::string dsn_of(std::string_view reply);

enum class Status { sent, deferred, bounced };

struct Delivery {
  std::string recipient;  // without brackets
  std::string relay;      // "local", "host[addr]:port", "none"
  // Postfix's delays=a/b/c/d: before the queue, in the queue, connection
  // setup, transmission. delay= is their sum.
  double before_queue = 0;
  double in_queue = 0;
  double connection = 0;
  double transmission = 0;
  Status status = Status::deferred;
  std::string reply;  // the reply that decided it
};

// "to=<a@b>, relay=..., delay=N, delays=a/b/c/d, dsn=X.Y.Z, status=sent (reply)"
std::string delivery(const Delivery& line);

struct Reject {
  std::string stage;   // "RCPT", "MAIL", "DATA"
  std::string client;  // client(): "unknown[192.0.2.1]"
  std::string reply;   // "550 5.1.1 <a@b>: Recipient address rejected: user unknown"
  std::string sender;  // without brackets; logged only when known
  bool sender_known = false;
  std::string recipient;  // logged when not empty
  std::string protocol;   // "ESMTP", "SMTP", "LMTP"
  std::string helo;       // logged when not empty
};

// "NOQUEUE: reject: RCPT from client: reply; from=<s> to=<r> proto=ESMTP helo=<h>"
std::string reject(const Reject& line);

}  // namespace stokend::log_lines
