// Client-side TLS for STARTTLS (RFC 3207): the shared context and the
// per-connection settings (SNI and certificate name checks).
//
// Contract: make_client_tls_context() builds one context for all outbound
// connections: TLS 1.2 or newer, trust anchors from a CA file and/or the
// system store. It does not by itself require verification: each connection
// asks for it (new_client_tls) when its destination says so, so the same
// context serves opportunistic MX delivery (RFC 7435: encrypt, do not
// authenticate) and verified delivery to a named host.
#pragma once

#include <string>

#include "common/event_handles.h"

namespace stokend::client {

struct ClientTlsOptions {
  std::string ca_file;           // PEM trust anchors; empty: none from a file
  bool use_system_store = true;  // also trust the system's default CA paths
};

SslContextPtr make_client_tls_context(const ClientTlsOptions& options, std::string& error);

// A TLS state for one connection. server_name: SNI (skipped for IP
// literals, RFC 6066 §3) and, when verify is set, the name the peer's
// certificate must match (X509_VERIFY_PARAM_set1_host, no partial
// wildcards). Returns null and sets error on failure.
SslPtr new_client_tls(SSL_CTX* context, const std::string& server_name, bool verify,
                      std::string& error);

// After a handshake with verification: why it failed, from the verify result.
std::string certificate_problem(const SSL* ssl);

}  // namespace stokend::client
