// A full configuration reload of the running daemon (SIGHUP, `systemctl
// reload`, `stokenctl reload`): the configuration file, the users file and
// the TLS certificate and key are read again and checked as at start; a
// configuration that fails is refused whole, with a log line per error
// (FILE:LINE:COL) and the one in force stays.
//
// What changes live: local_domains, tls (certificate, key, generated
// directory), limits, timeouts, routes, tls_policies,
// recipient_probe.domains, normalise_bare_line_endings, nul_octets,
// tokens.remove_submission_token_headers, fast_lane.enabled,
// fast_lane.distribute_tokens, log_level, and the users file's contents.
// New sessions take the new settings; a session in progress finishes with
// the generation it started with (server_context.h); the queue's next
// delivery attempt uses the new routes, TLS policies and fast-lane switches.
// The users are one live directory: a removed user can no longer log in or
// receive mail from then on, in any session (a session already logged in
// stays logged in until it ends).
//
// Everything else needs a restart (restart_only_settings()): a changed one
// is named in a warning and keeps its running value, and the rest is still
// applied.
//
// Contract: loop thread only. reload_configuration() is the one entry both
// the signal and the control command call; it returns what happened and
// has logged it.
#pragma once

#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "mta/config/config.h"
#include "mta/control/control_protocol.h"
#include "mta/delivery/delivery_router.h"
#include "mta/delivery/remote_delivery.h"
#include "mta/server/server_context.h"
#include "mta/users.h"

namespace stokend::wiring {

struct ReloadResult {
  bool reloaded = false;
  std::string refusal;                    // why not, when not reloaded
  std::vector<std::string> restart_only;  // changed settings that wait for a restart
};

// The settings that differ between running and wanted and need a restart;
// each is set back to its running value in wanted.
std::vector<std::string> keep_restart_only_settings(const Config& running, Config& wanted);

class Reloader {
 public:
  // context.generation holds the configuration in force at start.
  Reloader(server::ServerContext& context, UserDirectory& users, DeliveryRouter& router,
           RemoteDelivery& remote_delivery);
  Reloader(const Reloader&) = delete;
  Reloader& operator=(const Reloader&) = delete;

  // trigger names what asked ("SIGHUP", "stokenctl reload") in the log lines.
  ReloadResult reload_configuration(std::string_view trigger);

 private:
  ReloadResult reload(std::string_view trigger);

  server::ServerContext& context_;
  UserDirectory& users_;
  DeliveryRouter& router_;
  RemoteDelivery& remote_delivery_;
};

// The control socket's answer (control_protocol.h): OK with "reloaded" and
// the settings that wait for a restart, or ERR "refused: reason".
control::Answer reload_answer(const ReloadResult& result);

}  // namespace stokend::wiring
