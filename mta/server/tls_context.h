// The server-side TLS context shared by every listener (RFC 3207 STARTTLS and
// RFC 8314 implicit TLS).
//
// Contract: make_server_tls_context() loads a certificate chain and private
// key, checks that they match, and sets TLS 1.2 as the minimum version.
// Errors come back as text naming the file and OpenSSL's reason.
#pragma once

#include <filesystem>
#include <string>

#include "mta/event_handles.h"

namespace stokend::server {

SslContextPtr make_server_tls_context(const std::filesystem::path& certificate_chain,
                                      const std::filesystem::path& private_key, std::string& error);

// "TLS1.3 TLS_AES_256_GCM_SHA384", for Received headers and logs.
std::string describe_tls(const SSL* ssl);

// The text of the most recent OpenSSL errors, drained from its queue.
std::string openssl_errors();

}  // namespace stokend::server
