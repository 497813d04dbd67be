// See openssl_text.h.
#include "common/openssl_text.h"

#include <openssl/err.h>

namespace stokend {

std::string openssl_errors() {
  std::string text;
  while (unsigned long code = ERR_get_error()) {
    char buffer[256];
    ERR_error_string_n(code, buffer, sizeof buffer);
    if (!text.empty()) text += "; ";
    text += buffer;
  }
  return text.empty() ? "unknown OpenSSL error" : text;
}

std::string describe_tls(const SSL* ssl) {
  if (!ssl) return {};
  std::string text = SSL_get_version(ssl);
  if (const SSL_CIPHER* cipher = SSL_get_current_cipher(ssl)) {
    text += " ";
    text += SSL_CIPHER_get_name(cipher);
  }
  return text;
}

}  // namespace stokend
