// See pem_checks.h.
#include "mta/config/pem_checks.h"

#include <openssl/err.h>
#include <openssl/ssl.h>

#include "common/event_handles.h"

namespace stokend::config_reading {
namespace {

// An encrypted key would otherwise make OpenSSL ask on the terminal.
int no_passphrase(char*, int, int, void*) { return 0; }

SslContextPtr new_context() {
  SslContextPtr context(SSL_CTX_new(TLS_method()));
  if (context) SSL_CTX_set_default_passwd_cb(context.get(), &no_passphrase);
  return context;
}

// OpenSSL's own errors name routines and codes; the messages here say what
// to fix instead.
std::string quoted(const std::filesystem::path& file) { return "'" + file.string() + "'"; }

}  // namespace

std::optional<std::string> certificate_chain_problem(const std::filesystem::path& file) {
  const SslContextPtr context = new_context();
  if (!context) return "cannot check " + quoted(file) + ": out of memory";
  const bool loaded = SSL_CTX_use_certificate_chain_file(context.get(), file.c_str()) == 1;
  ERR_clear_error();
  if (loaded) return std::nullopt;
  return quoted(file) +
         " is not a PEM certificate (expected a '-----BEGIN CERTIFICATE-----' block)";
}

std::optional<std::string> private_key_problem(const std::filesystem::path& file) {
  const SslContextPtr context = new_context();
  if (!context) return "cannot check " + quoted(file) + ": out of memory";
  const bool loaded =
      SSL_CTX_use_PrivateKey_file(context.get(), file.c_str(), SSL_FILETYPE_PEM) == 1;
  ERR_clear_error();
  if (loaded) return std::nullopt;
  return quoted(file) +
         " is not an unencrypted PEM private key (expected a '-----BEGIN PRIVATE KEY-----' "
         "block; stokend cannot ask for a passphrase)";
}

std::optional<std::string> key_mismatch(const std::filesystem::path& certificate_chain,
                                        const std::filesystem::path& private_key) {
  const SslContextPtr context = new_context();
  if (!context) return "cannot check " + quoted(private_key) + ": out of memory";
  const bool matches =
      SSL_CTX_use_certificate_chain_file(context.get(), certificate_chain.c_str()) == 1 &&
      SSL_CTX_use_PrivateKey_file(context.get(), private_key.c_str(), SSL_FILETYPE_PEM) == 1 &&
      SSL_CTX_check_private_key(context.get()) == 1;
  ERR_clear_error();
  if (matches) return std::nullopt;
  return "the key in " + quoted(private_key) + " does not belong to the certificate in " +
         quoted(certificate_chain);
}

std::optional<std::string> ca_file_problem(const std::filesystem::path& file) {
  const SslContextPtr context = new_context();
  if (!context) return "cannot check " + quoted(file) + ": out of memory";
  const bool loaded = SSL_CTX_load_verify_locations(context.get(), file.c_str(), nullptr) == 1;
  ERR_clear_error();
  if (loaded) return std::nullopt;
  return quoted(file) +
         " holds no PEM CA certificate (expected '-----BEGIN CERTIFICATE-----' blocks)";
}

}  // namespace stokend::config_reading
