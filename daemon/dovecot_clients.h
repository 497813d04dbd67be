// The clients of a provider's Dovecot (auth: backend dovecot): AUTH through
// its auth client socket, local users through its auth-userdb socket
// (mta/auth/). Both connect now, in the background; while Dovecot is away
// AUTH and RCPT fail temporarily and the clients keep trying.
//
// Contract: with backend users_file both are null and the sessions use the
// users file, as before the auth section existed.
#pragma once

#include <memory>

#include "common/event_handles.h"
#include "mta/auth/dovecot_auth_client.h"
#include "mta/auth/dovecot_userdb.h"
#include "mta/config/config.h"

namespace stokend::wiring {

struct DovecotClients {
  std::unique_ptr<auth::DovecotAuthClient> auth;
  std::unique_ptr<auth::DovecotUserdb> userdb;
};

DovecotClients start_dovecot_clients(const Config& config, event_base* base);

}  // namespace stokend::wiring
