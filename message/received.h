// The Received trace header (RFC 5321 §4.4) stokend prepends to every
// message it accepts.
#pragma once

#include <chrono>
#include <string>

namespace stokend::message {

struct ReceivedInfo {
  std::string helo_name;        // what the client said in EHLO/HELO/LHLO
  std::string client_address;   // IP literal of the peer
  std::string by_host;          // our hostname
  std::string protocol;         // "ESMTPS", "LMTPSA", "UTF8SMTPSA", ...: with_protocol()
  std::string id;               // our message id
  std::string recipient;        // "for <...>" clause when exactly one recipient; else empty
  std::string tls_description;  // e.g. "TLS1.3 TLS_AES_256_GCM_SHA384"; empty without TLS
  std::chrono::system_clock::time_point when = std::chrono::system_clock::now();
};

// What the session knows about how a message arrived, for the "with" clause.
struct ProtocolUsed {
  bool lmtp = false;           // LHLO, or a token transaction
  bool extended = false;       // EHLO (or LHLO) rather than HELO
  bool tls = false;            // the session runs over TLS
  bool authenticated = false;  // AUTH succeeded
  bool smtputf8 = false;       // MAIL carried SMTPUTF8 (RFC 6531 §3.4)
};

// The with-protocol word: SMTP or ESMTP, or LMTP, then S for TLS and A for
// AUTH (RFC 3848 §2-4: ESMTPS, ESMTPSA, LMTPSA, ...). With SMTPUTF8 the
// word is UTF8SMTP / UTF8LMTP with the same suffixes (RFC 6531 §3.7.3);
// SMTPUTF8 needs EHLO, so there is no "UTF8ESMTP".
std::string with_protocol(const ProtocolUsed& used);

// Returns the complete header field, folded, ending with CRLF.
std::string received_header(const ReceivedInfo& info);

// RFC 5322 §3.3 date-time in local time, e.g. "Sun, 22 Nov 2026 12:00:00 +0000".
std::string rfc5322_date(std::chrono::system_clock::time_point when);

}  // namespace stokend::message
