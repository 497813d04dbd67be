// Destination: where an outbound connection goes and how it must be secured: an SMTP or
// LMTP (RFC 2033) peer on an IP literal and port, or on a unix socket path.
//
// Contract: key() names the destination for the connection pool. Two
// destinations with the same key are interchangeable, so the key includes the
// TLS requirements whenever they differ from the default (opportunistic,
// unverified): a connection made under weaker rules is never reused for a
// destination that asks for stronger ones.
#pragma once

#include <cstdint>
#include <string>

namespace stokend {

enum class Protocol { smtp, lmtp };

enum class TlsPolicy {
  never,          // plaintext even if STARTTLS is offered (e.g. a local mailstore)
  opportunistic,  // STARTTLS when offered, plaintext otherwise (RFC 3207, MX default)
  required,       // STARTTLS must be offered and must succeed, else the delivery fails
};

struct Destination {
  Protocol protocol = Protocol::smtp;
  std::string host;  // IPv4 or IPv6 literal, without brackets
  std::uint16_t port = 25;
  std::string unix_path;  // when not empty, host and port are not used

  TlsPolicy tls_policy = TlsPolicy::opportunistic;
  // Sent as SNI (RFC 6066 §3); with verify_certificate it is also the name
  // the certificate must carry (RFC 6125). Set from the recipient domain's
  // TLS policy (mta/tls_policies.h): the MX host name for MX delivery, the
  // recipient domain for a fixed next hop given as an IP literal.
  std::string tls_server_name;
  bool verify_certificate = false;
  // TLS from the first byte (RFC 8314 §3.3, submissions on 465) instead of
  // STARTTLS; tls_policy must then be required.
  bool implicit_tls = false;
  // Who the connection is authenticated as once set up (the fast lane's AUTH
  // STOKEN binds a session to one sender): part of the key, so a connection
  // is only reused for the same identity. Empty: no authentication.
  std::string session_owner;
  // SASL credentials for AUTH (RFC 4954) once TLS is up: a smarthost route
  // with an entry in delivery.relay_credentials. The login is part of the
  // key, so a connection is reused only for the same account; the password
  // is never part of the key, describe() or a log line.
  std::string auth_login;
  std::string auth_password;

  static Destination tcp(Protocol protocol, std::string host, std::uint16_t port);
  static Destination unix_socket(Protocol protocol, std::string path);

  bool is_unix_socket() const { return !unix_path.empty(); }
  // "smtp:[127.0.0.1]:2525", "lmtp:unix:/run/dovecot/lmtp", with
  // ";tls=required;verify=mx.example" appended when TLS rules are not default
  // (";implicit" for implicit TLS), ";owner=ADDRESS" for a session owner and
  // ";auth=LOGIN" for SASL credentials.
  std::string key() const;
  // "[127.0.0.1]:2525" or "unix:/run/dovecot/lmtp", for messages.
  std::string describe() const;
};

}  // namespace stokend
