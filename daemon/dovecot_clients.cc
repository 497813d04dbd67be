// See dovecot_clients.h.
#include "daemon/dovecot_clients.h"

#include <spdlog/spdlog.h>

namespace stokend::wiring {

DovecotClients start_dovecot_clients(const Config& config, event_base* base) {
  DovecotClients clients;
  if (config.auth.backend != AuthBackend::dovecot) return clients;
  clients.auth =
      std::make_unique<auth::DovecotAuthClient>(base, config.auth.socket, config.auth.timeout);
  clients.userdb = std::make_unique<auth::DovecotUserdb>(
      base, config.auth.userdb_socket, config.auth.cache_ttl, config.auth.timeout);
  spdlog::info("logins through Dovecot at {}, local users through {}",
               config.auth.socket.describe(), config.auth.userdb_socket.describe());
  clients.auth->start();
  clients.userdb->start();
  return clients;
}

}  // namespace stokend::wiring
