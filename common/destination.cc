// See destination.h.
#include "common/destination.h"

namespace stokend {

Destination Destination::tcp(Protocol protocol, std::string host, std::uint16_t port) {
  Destination destination;
  destination.protocol = protocol;
  destination.host = std::move(host);
  destination.port = port;
  return destination;
}

Destination Destination::unix_socket(Protocol protocol, std::string path) {
  Destination destination;
  destination.protocol = protocol;
  destination.unix_path = std::move(path);
  return destination;
}

std::string Destination::describe() const {
  if (is_unix_socket()) return "unix:" + unix_path;
  return "[" + host + "]:" + std::to_string(port);
}

std::string Destination::key() const {
  std::string key = protocol == Protocol::lmtp ? "lmtp:" : "smtp:";
  key += describe();
  bool default_tls = tls_policy == TlsPolicy::opportunistic && !verify_certificate;
  if (!default_tls) {
    switch (tls_policy) {
      case TlsPolicy::never:
        key += ";tls=never";
        break;
      case TlsPolicy::opportunistic:
        key += ";tls=opportunistic";
        break;
      case TlsPolicy::required:
        key += ";tls=required";
        break;
    }
    if (verify_certificate) key += ";verify=" + tls_server_name;
  }
  if (!tls_server_name.empty() && !verify_certificate) key += ";sni=" + tls_server_name;
  if (implicit_tls) key += ";implicit";
  if (!session_owner.empty()) key += ";owner=" + session_owner;
  if (!auth_login.empty()) key += ";auth=" + auth_login;
  return key;
}

}  // namespace stokend
