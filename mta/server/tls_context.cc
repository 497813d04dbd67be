// See tls_context.h.
#include "mta/server/tls_context.h"

#include <openssl/err.h>

#include "common/openssl_text.h"

namespace stokend::server {

SslContextPtr make_server_tls_context(const std::filesystem::path& certificate_chain,
                                      const std::filesystem::path& private_key,
                                      std::string& error) {
  SslContextPtr context(SSL_CTX_new(TLS_server_method()));
  if (!context) {
    error = "cannot create TLS context: " + openssl_errors();
    return nullptr;
  }
  // RFC 8996 retires TLS 1.0 and 1.1; RFC 8314 §4.1 asks for current versions.
  SSL_CTX_set_min_proto_version(context.get(), TLS1_2_VERSION);
  SSL_CTX_set_options(context.get(), SSL_OP_NO_RENEGOTIATION | SSL_OP_CIPHER_SERVER_PREFERENCE |
                                         SSL_OP_NO_COMPRESSION);
  // Partial writes are how bufferevents drive SSL_write.
  SSL_CTX_set_mode(context.get(), SSL_MODE_ENABLE_PARTIAL_WRITE |
                                      SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER |
                                      SSL_MODE_RELEASE_BUFFERS);
  SSL_CTX_set_session_cache_mode(context.get(), SSL_SESS_CACHE_SERVER);
  static const unsigned char session_id_context[] = "stokend";
  SSL_CTX_set_session_id_context(context.get(), session_id_context, sizeof session_id_context - 1);

  if (SSL_CTX_use_certificate_chain_file(context.get(), certificate_chain.c_str()) != 1) {
    error = certificate_chain.string() + ": cannot load certificate chain: " + openssl_errors();
    return nullptr;
  }
  if (SSL_CTX_use_PrivateKey_file(context.get(), private_key.c_str(), SSL_FILETYPE_PEM) != 1) {
    error = private_key.string() + ": cannot load private key: " + openssl_errors();
    return nullptr;
  }
  if (SSL_CTX_check_private_key(context.get()) != 1) {
    error = private_key.string() + ": private key does not match certificate " +
            certificate_chain.string();
    return nullptr;
  }
  return context;
}

}  // namespace stokend::server
