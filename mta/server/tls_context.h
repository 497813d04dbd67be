// The server-side TLS context shared by every listener (RFC 3207 STARTTLS and
// RFC 8314 implicit TLS).
//
// Contract: make_server_tls_context() loads a certificate chain and private
// key, checks that they match, and sets TLS 1.2 as the minimum version.
// Errors come back as text naming the file and OpenSSL's reason.
#pragma once

#include <filesystem>
#include <string>

#include "common/event_handles.h"

namespace stokend::server {

SslContextPtr make_server_tls_context(const std::filesystem::path& certificate_chain,
                                      const std::filesystem::path& private_key, std::string& error);

}  // namespace stokend::server
