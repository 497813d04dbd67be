// The daemon's inbound side: the server TLS context the listeners share,
// the listeners themselves, and the control socket stokenctl talks to.
//
// Contract: a function that fails logs why (critical) and returns nothing;
// run_daemon() then exits with status 1.
#pragma once

#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "common/event_handles.h"
#include "mta/config/config.h"
#include "mta/control/control_server.h"
#include "mta/server/listener.h"
#include "mta/server/server_context.h"

namespace stokend::wiring {

// The configured certificate, or a self-signed one generated into
// tls.generated_directory on first start. Holds a null context when no
// listener uses TLS; nullopt when the context cannot be made.
std::optional<SslContextPtr> build_server_tls(const Config& config);

// The certificate and key read again from disk (a reload, after a
// renewal); null when no listener uses TLS, or when they cannot be loaded,
// with the reason in error.
SslContextPtr reload_server_tls(const Config& config, std::string& error);

// What sessions start with until a reload replaces it (reload.h): the
// configuration, the TLS context built for it and its routes.
std::shared_ptr<server::ServerGeneration> first_generation(const Config& config, SslContextPtr tls);

// One open listener per configured one, in order.
std::optional<std::vector<std::unique_ptr<server::Listener>>> start_listeners(
    server::ServerContext& context, const Config& config);

// stokenctl queue ...: the administrator's way into the running queue.
bool open_control_socket(control::ControlServer& control);

}  // namespace stokend::wiring
