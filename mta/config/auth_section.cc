// The reader of the auth section: where logins (AUTH) and local users (RCPT)
// are looked up. See config_reader.h.
//
//   auth:
//     backend: dovecot                      # or users_file (the default)
//     socket: unix:/run/dovecot/auth-client # or inet:127.0.0.1:12345
//     userdb_socket: unix:/run/dovecot/auth-userdb
//     cache_ttl: 60s                        # userdb answers; 0: not cached
//     timeout: 5s                           # per request to Dovecot
//
// With backend dovecot both sockets are required, and every local domain
// must be delivered by an lmtp or smtp route (normally Dovecot's LMTP): the
// built-in Maildir store knows only the users file, so a Dovecot user
// accepted at RCPT would bounce there.
#include "mta/config/config_reader.h"

namespace stokend::config_reading {

void ConfigReader::read_auth(const Field& field, AuthConfig& auth) {
  std::optional<YAML::Mark> socket_mark;
  std::optional<YAML::Mark> userdb_mark;
  auto endpoint = [this](auth::DovecotEndpoint& target, std::optional<YAML::Mark>& mark) {
    return [this, &target, &mark](const Field& key_field) {
      mark = key_field.value_mark();
      const auto text = read_string(key_field);
      if (!text) return;
      std::string error;
      const auto parsed = auth::parse_dovecot_endpoint(*text, error);
      if (!parsed) {
        return error_at(key_field.value_mark(),
                        key_field.setting + ": " + error + ", got '" + *text + "'");
      }
      target = *parsed;
    };
  };
  read_map(
      field.value, field.setting, field.value_mark(),
      {{"backend",
        [&](const Field& key_field) {
          auth_mark_ = key_field.value_mark();
          if (const auto backend = read_choice<AuthBackend>(
                  key_field, "backend",
                  {{"users_file", AuthBackend::users_file}, {"dovecot", AuthBackend::dovecot}})) {
            auth.backend = *backend;
          }
        }},
       {"socket", endpoint(auth.socket, socket_mark)},
       {"userdb_socket", endpoint(auth.userdb_socket, userdb_mark)},
       {"cache_ttl", duration_into(auth.cache_ttl, true)},
       {"timeout", duration_into(auth.timeout)}});
  if (auth.backend != AuthBackend::dovecot) return;
  const YAML::Mark where = auth_mark_.value_or(field.value_mark());
  if (!socket_mark) {
    error_at(where, field.setting +
                        ".socket: required with backend dovecot (Dovecot's auth client "
                        "listener, e.g. unix:/run/dovecot/auth-client)");
  }
  if (!userdb_mark) {
    error_at(where, field.setting +
                        ".userdb_socket: required with backend dovecot (Dovecot's "
                        "auth-userdb listener, e.g. unix:/run/dovecot/auth-userdb)");
  }
}

void ConfigReader::check_auth_routes(const Config& config) {
  if (config.auth.backend != AuthBackend::dovecot) return;
  RouteTable routes(config.routes);
  for (const auto& domain : config.local_domains) {
    const Route::Transport transport = routes.route_for(domain, true).transport;
    if (transport == Route::Transport::lmtp || transport == Route::Transport::smtp) continue;
    YAML::Mark where;
    if (auth_mark_) where = *auth_mark_;
    error_at(where, "auth.backend: dovecot: local domain '" + domain +
                        "' has no lmtp or smtp route; the built-in Maildir store knows only "
                        "the users file (route it to Dovecot's LMTP, e.g. routes: {" +
                        domain + ": lmtp:unix:/run/dovecot/lmtp})");
  }
}

}  // namespace stokend::config_reading
