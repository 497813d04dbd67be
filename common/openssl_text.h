// OpenSSL state as text, for error messages and logs on both sides of a
// connection (the server's listeners and the outbound client).
//
// Contract: openssl_errors() drains OpenSSL's thread-local error queue, so a
// later failure is not reported with an earlier one's reason; it never
// returns an empty string. describe_tls() returns "" for a null SSL.
#pragma once

#include <openssl/ssl.h>

#include <string>

namespace stokend {

// The text of the most recent OpenSSL errors ("; "-separated), drained from
// its queue; "unknown OpenSSL error" when the queue was empty.
std::string openssl_errors();

// "TLS1.3 TLS_AES_256_GCM_SHA384", for Received headers and logs.
std::string describe_tls(const SSL* ssl);

}  // namespace stokend
