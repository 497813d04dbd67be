// Every tunable of the outbound SMTP/LMTP client and its connection pool, with
// its default, in one struct.
//
// Contract: a default-constructed ClientSettings is usable as it is, except
// helo_name (the caller sets its own host name) and tls_context (without one,
// STARTTLS is never attempted and a destination that requires TLS fails).
// The timeouts follow RFC 5321 §4.5.3.2.
#pragma once

#include <openssl/ssl.h>

#include <chrono>
#include <cstddef>
#include <functional>
#include <string>
#include <string_view>

namespace stokend::client {

using namespace std::chrono_literals;

struct ClientTimeouts {
  std::chrono::milliseconds connect = 30s;
  std::chrono::milliseconds greeting = 300s;         // §4.5.3.2.1 initial 220: 5 minutes
  std::chrono::milliseconds command = 300s;          // EHLO, MAIL, RCPT, RSET, STARTTLS, raw
  std::chrono::milliseconds data_initiation = 120s;  // §4.5.3.2.4: 2 minutes for the 354
  std::chrono::milliseconds data_block = 180s;       // §4.5.3.2.5: each write must progress
  std::chrono::milliseconds data_done = 600s;        // §4.5.3.2.6: 10 minutes after "."
  std::chrono::milliseconds tls_handshake = 30s;
  std::chrono::milliseconds quit = 10s;  // waiting for the 221; nothing depends on it
};

struct ClientSettings {
  // Our name in EHLO/LHLO/HELO (RFC 5321 §4.1.1.1: the client's FQDN).
  std::string helo_name = "localhost";
  ClientTimeouts timeouts;

  // Send MAIL, RCPT and DATA in one write when the server offers PIPELINING
  // (RFC 2920). Off: one command at a time.
  bool use_pipelining = true;

  // RFC 5321 §4.5.3.1.5 limits a reply line to 512 octets, but §4.5.3.1
  // asks receivers to be liberal; this cap only protects our memory.
  std::size_t max_reply_line_length = 2048;
  std::size_t max_reply_lines = 100;  // lines in one multi-line reply

  // Message octets handed to the socket per write while sending DATA, so a
  // large message is streamed rather than copied whole into the buffer.
  std::size_t data_chunk_size = 64 * 1024;

  // Client TLS context for STARTTLS (not owned; see client_tls.h). Null:
  // plaintext only.
  SSL_CTX* tls_context = nullptr;

  // Sees the conversation, for a transcript (stokenctl stoken send): every
  // command line sent ('C'), every reply line received ('S'), without the
  // CRLF, and events ('*': TLS started, the message sent as "[N octets]").
  // Empty: nothing is reported. Never set in the daemon: lines carry
  // tokens and AUTH responses.
  std::function<void(char from, std::string_view line)> transcript;

  // Connection pool
  std::size_t max_connections_per_destination = 10;
  std::chrono::milliseconds idle_timeout = 10s;  // an unused pooled connection is closed after this
  std::size_t max_transactions_per_connection = 100;  // then it is closed and replaced
};

}  // namespace stokend::client
