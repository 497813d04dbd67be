// What a receiving session asks of its mail filters (milters) at the end of
// the data: here is the transaction, what becomes of it? MilterChain
// (mta/milter/milter_chain.h) implements it by asking each configured milter
// in turn; tests use a fake (tests/support/).
//
// Contract: filter() answers once, later, on the loop thread (never inside
// filter() itself), and always: a milter that is down, too slow or speaks
// garbage yields its default_action, so the session never waits for ever.
// The verdict's message is the one to queue: the request's, with every
// change the milters made (headers, body, sender, recipients) applied.
// Nothing here holds on to the session: a session that ends first drops
// the verdict, and since its client has not heard 250, nothing is lost.
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "mta/defaults.h"
#include "mta/milter_settings.h"

namespace stokend {

// What the milters are told of the client (the macros and CONNECT, HELO).
struct FilterClient {
  std::string address;     // IP literal, no brackets
  std::uint16_t port = 0;  // 0: unknown
  std::string name;        // reverse name; empty: "unknown", as Postfix sends it
  std::string helo;
  std::string auth_user;    // empty: not logged in
  std::string auth_method;  // the SASL mechanism
  std::string tls_version;  // empty: no TLS
};

struct FilterRequest {
  std::vector<MilterConfig> milters;  // in order; those of the session's role
  std::string hostname;               // j: our host name
  std::string daemon_name;            // {daemon_name}: the listener's role
  std::string queue_id;               // i
  FilterClient client;
  std::string sender;  // the reverse-path mailbox, empty for <>
  std::vector<std::string> recipients;
  std::string message;  // CRLF, our Received header first
  // A milter's changes may not make the message larger than this.
  std::size_t max_message_size = defaults::max_message_size;
};

struct FilterVerdict {
  enum class Action {
    accept,      // queue verdict.sender/recipients/message
    quarantine,  // queue them held (an administrator releases them)
    discard,     // tell the client 250, keep nothing (a milter said so)
    reject,      // reply code/text (5xx) and keep nothing
    tempfail,    // reply code/text (4xx) and keep nothing
  };
  Action action = Action::accept;
  // reject and tempfail: the SMTP reply; lines after the first continue it.
  int code = 0;
  std::string enhanced;  // "5.7.1"; may be empty
  std::vector<std::string> text;
  std::string reason;                   // quarantine, discard, reject: who and why, for the log
  std::string sender;                   // possibly changed (SMFIR_CHGFROM)
  std::vector<std::string> recipients;  // possibly changed (SMFIR_ADDRCPT, SMFIR_DELRCPT)
  std::string message;                  // possibly changed (headers, body)
};

class MessageFilter {
 public:
  using Done = std::function<void(FilterVerdict)>;
  virtual ~MessageFilter() = default;
  virtual void filter(FilterRequest request, Done done) = 0;
};

}  // namespace stokend
