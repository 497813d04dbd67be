// See inbound.h.
#include "daemon/inbound.h"

#include <spdlog/spdlog.h>

#include <string>

#include "mta/server/self_signed_certificate.h"
#include "mta/server/tls_context.h"

namespace stokend::wiring {
namespace {

bool uses_tls(const Config& config) {
  for (const auto& listener : config.listeners) {
    if (listener.tls != TlsMode::none) return true;
  }
  return false;
}

// The context of the configured certificate, or of the self-signed one;
// null with the reason in error.
SslContextPtr load_tls(const Config& config, std::string& error) {
  std::filesystem::path certificate = config.tls.certificate;
  std::filesystem::path key = config.tls.private_key;
  if (certificate.empty()) {
    auto generated = server::ensure_self_signed_certificate(config.tls.generated_directory,
                                                            config.hostname, error);
    if (!generated) {
      error = "cannot create a self-signed certificate: " + error;
      return nullptr;
    }
    certificate = generated->certificate;
    key = generated->private_key;
    spdlog::info("using self-signed certificate {}", certificate.string());
  }
  return server::make_server_tls_context(certificate, key, error);
}

}  // namespace

std::optional<SslContextPtr> build_server_tls(const Config& config) {
  if (!uses_tls(config)) return SslContextPtr();
  std::string error;
  SslContextPtr context = load_tls(config, error);
  if (!context) {
    spdlog::critical("{}", error);
    return std::nullopt;
  }
  return context;
}

SslContextPtr reload_server_tls(const Config& config, std::string& error) {
  if (!uses_tls(config)) return nullptr;
  return load_tls(config, error);
}

std::optional<std::vector<std::unique_ptr<server::Listener>>> start_listeners(
    server::ServerContext& context, const Config& config) {
  std::vector<std::unique_ptr<server::Listener>> listeners;
  for (const auto& listener_config : config.listeners) {
    auto listener = std::make_unique<server::Listener>(context, listener_config);
    if (auto error = listener->open(); !error.empty()) {
      spdlog::critical("{}", error);
      return std::nullopt;
    }
    listeners.push_back(std::move(listener));
  }
  return listeners;
}

bool open_control_socket(control::ControlServer& control) {
  if (auto error = control.open(); !error.empty()) {
    spdlog::critical("{}", error);
    return false;
  }
  return true;
}

std::shared_ptr<server::ServerGeneration> first_generation(const Config& config,
                                                           SslContextPtr tls) {
  auto generation = std::make_shared<server::ServerGeneration>();
  generation->config = std::make_shared<const Config>(config);
  generation->tls = std::shared_ptr<SSL_CTX>(tls.release(), SSL_CTX_free);
  generation->routes = std::make_shared<const RouteTable>(config.routes);
  return generation;
}

}  // namespace stokend::wiring
