// The client half of stokenctl's `stoken` commands: one connection to a
// Token Server, driven step by step in a blocking loop on the outbound
// client (mta/client/smtp_client.h), with a swaks-like transcript.
//
// Contract: every call returns when the server answered or the client's
// deadline (ClientTimeouts, all set to the one --timeout) passed; nothing
// waits longer. A StokenSession is used from one thread. Targets come from
// find_targets(): --server HOST:PORT as given, or --domain D through the SRV
// records the Remote Client uses (_submissions._tcp, then _submission._tcp,
// RFC 6186 / RFC 8314 §5.1). The certificate is always verified against
// the target's name (rfcdraft/ §6.3) unless a --tls-name replaces it.
//
// Transcripts shorten every token-sized word (a STOKEN= value, an AUTH
// STOKEN response, a permanent token in a 2.1.13 reply) unless asked to
// show them: a transcript is something people paste into tickets.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <ostream>
#include <string>
#include <string_view>
#include <vector>

#include "common/event_handles.h"
#include "dns/ares_resolver.h"
#include "mta/client/smtp_client.h"

namespace stokend::admin {

// Options shared by `stoken send` and `stoken check`.
struct StokenConnectOptions {
  std::string server;            // HOST:PORT; or
  std::string domain;            // find the Token Server by SRV
  std::string tls = "implicit";  // implicit | starttls (with --server)
  std::string tls_name;          // the certificate's name; empty: the host
  std::string ca_file;           // trust anchors; empty: the system store
  std::string dns_servers;       // "127.0.0.1:5353"; empty: resolv.conf
  std::chrono::milliseconds timeout{30'000};
  bool show_transcript = false;
  bool show_tokens = false;
};

struct StokenTarget {
  std::string host;  // the SRV target or the --server host
  std::string address;
  std::uint16_t port = 0;
  bool implicit_tls = true;
  std::string tls_name;

  std::string describe() const;  // "host[address]:port"
};

// "1-created:17...(+133)" (the first 12 octets and how many more) for a
// word longer than 24 octets; the word itself otherwise.
std::string shorten_token(std::string_view word);
// A transcript line with every token in it shortened: STOKEN= and
// MYSTOKEN= values, the AUTH STOKEN response, tokens in replies.
std::string shorten_tokens_in(std::string_view line);

class StokenSession {
 public:
  StokenSession(const StokenConnectOptions& options, std::ostream& transcript);
  ~StokenSession();
  StokenSession(const StokenSession&) = delete;
  StokenSession& operator=(const StokenSession&) = delete;

  // Where to connect; sets error when none can be found.
  std::vector<StokenTarget> find_targets(std::string& error);
  // The addresses of one host (an IP literal as it is).
  std::vector<StokenTarget> resolve(const std::string& host, std::uint16_t port, bool implicit_tls,
                                    std::string& error);
  // The SRV records behind --domain, as "priority weight port target" (for
  // the check's discovery line); sets error on a failed lookup.
  std::vector<std::string> srv_records(std::string& error);

  // Connects (TLS as the target says, certificate verified), greets with
  // LHLO (lmtp) or EHLO; returns the failure, or nothing when ready.
  // tls_policy never: plaintext, for the check that STOKEN is absent
  // before TLS.
  std::optional<client::Failure> connect(const StokenTarget& target, Protocol protocol,
                                         TlsPolicy tls_policy = TlsPolicy::required);
  client::CommandResult command(const std::string& line);
  client::TransactionResult transaction(client::Envelope envelope, const std::string& message);
  void close();

  const client::Capabilities& capabilities() const;
  bool connected() const;
  void note(const std::string& text);  // "=== text" in the transcript

 private:
  template <typename Result, typename Start>
  Result wait(Start start);
  void show(char from, std::string_view line);

  StokenConnectOptions options_;
  std::ostream& transcript_;
  EventBasePtr base_;
  SslContextPtr tls_;
  std::unique_ptr<dns::AresResolver> resolver_;
  std::shared_ptr<client::SmtpClient> client_;
  bool tls_started_ = false;
};

// "HOST:PORT" or "[v6]:PORT"; nullopt when malformed.
struct HostPort {
  std::string host;
  std::uint16_t port = 0;
};
std::optional<HostPort> parse_host_port(std::string_view text);

// The message for DATA: the file's (or standard input's) octets with every
// bare LF made CRLF, ending in CRLF.
std::string as_crlf_message(std::string_view text);

}  // namespace stokend::admin
