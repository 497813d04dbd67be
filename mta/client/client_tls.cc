// See client_tls.h.
#include "mta/client/client_tls.h"

#include <arpa/inet.h>
#include <openssl/x509v3.h>

#include "common/openssl_text.h"

namespace stokend::client {
namespace {

bool is_ip_literal(const std::string& name) {
  unsigned char address[16];
  return inet_pton(AF_INET, name.c_str(), address) == 1 ||
         inet_pton(AF_INET6, name.c_str(), address) == 1;
}

}  // namespace

SslContextPtr make_client_tls_context(const ClientTlsOptions& options, std::string& error) {
  SslContextPtr context(SSL_CTX_new(TLS_client_method()));
  if (!context) {
    error = "cannot create client TLS context: " + openssl_errors();
    return nullptr;
  }
  // RFC 8996 retires TLS 1.0 and 1.1.
  SSL_CTX_set_min_proto_version(context.get(), TLS1_2_VERSION);
  SSL_CTX_set_options(context.get(), SSL_OP_NO_RENEGOTIATION | SSL_OP_NO_COMPRESSION);
  // Partial writes are how bufferevents drive SSL_write.
  SSL_CTX_set_mode(context.get(), SSL_MODE_ENABLE_PARTIAL_WRITE |
                                      SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER |
                                      SSL_MODE_RELEASE_BUFFERS);
  if (!options.ca_file.empty() &&
      SSL_CTX_load_verify_locations(context.get(), options.ca_file.c_str(), nullptr) != 1) {
    error = options.ca_file + ": cannot load CA certificates: " + openssl_errors();
    return nullptr;
  }
  if (options.use_system_store && SSL_CTX_set_default_verify_paths(context.get()) != 1) {
    error = "cannot load the system CA store: " + openssl_errors();
    return nullptr;
  }
  return context;
}

SslPtr new_client_tls(SSL_CTX* context, const std::string& server_name, bool verify,
                      std::string& error) {
  SslPtr ssl(SSL_new(context));
  if (!ssl) {
    error = "cannot create TLS state: " + openssl_errors();
    return nullptr;
  }
  if (!server_name.empty() && !is_ip_literal(server_name) &&
      SSL_set_tlsext_host_name(ssl.get(), server_name.c_str()) != 1) {
    error = "cannot set TLS server name: " + openssl_errors();
    return nullptr;
  }
  if (verify) {
    if (server_name.empty()) {
      error = "certificate verification needs a server name";
      return nullptr;
    }
    X509_VERIFY_PARAM* parameters = SSL_get0_param(ssl.get());
    X509_VERIFY_PARAM_set_hostflags(parameters, X509_CHECK_FLAG_NO_PARTIAL_WILDCARDS);
    int set = is_ip_literal(server_name)
                  ? X509_VERIFY_PARAM_set1_ip_asc(parameters, server_name.c_str())
                  : X509_VERIFY_PARAM_set1_host(parameters, server_name.c_str(), 0);
    if (set != 1) {
      error = "cannot set the name to verify: " + openssl_errors();
      return nullptr;
    }
    // The handshake fails when the chain or the name does not verify.
    SSL_set_verify(ssl.get(), SSL_VERIFY_PEER, nullptr);
  } else {
    SSL_set_verify(ssl.get(), SSL_VERIFY_NONE, nullptr);
  }
  return ssl;
}

std::string certificate_problem(const SSL* ssl) {
  long result = SSL_get_verify_result(ssl);
  if (result == X509_V_OK) return {};
  return X509_verify_cert_error_string(result);
}

}  // namespace stokend::client
