// See reload.h.
#include "daemon/reload.h"

#include <spdlog/spdlog.h>

#include <exception>
#include <utility>

#include "daemon/inbound.h"

namespace stokend::wiring {
namespace {

std::string joined(const std::vector<std::string>& names) {
  std::string text;
  for (const auto& name : names) text += (text.empty() ? "" : ", ") + name;
  return text;
}

}  // namespace

std::vector<std::string> keep_restart_only_settings(const Config& running, Config& wanted) {
  std::vector<std::string> changed;
  // field(config) is the setting's place in a Config, running's or wanted's.
  auto restart_only = [&](const char* name, auto field) {
    if (field(wanted) == field(running)) return;
    changed.emplace_back(name);
    field(wanted) = field(running);
  };
  // Who stokend is and what it holds open: sockets, files, threads.
  restart_only(
      "hostname", [](auto& c) -> auto& { return c.hostname; });
  restart_only(
      "users_file", [](auto& c) -> auto& { return c.users_file; });
  // The aliases file's contents are read again when it changes.
  restart_only(
      "aliases", [](auto& c) -> auto& { return c.aliases; });
  restart_only(
      "auth", [](auto& c) -> auto& { return c.auth; });
  restart_only(
      "spool_directory", [](auto& c) -> auto& { return c.spool_directory; });
  restart_only(
      "maildir_root", [](auto& c) -> auto& { return c.maildir_root; });
  restart_only(
      "control_socket", [](auto& c) -> auto& { return c.control_socket; });
  restart_only(
      "listeners", [](auto& c) -> auto& { return c.listeners; });
  restart_only(
      "worker_threads", [](auto& c) -> auto& { return c.worker_threads; });
  restart_only(
      "log_file", [](auto& c) -> auto& { return c.log_file; });
  // The privilege drop happens once, at start (privileges.h).
  restart_only(
      "user", [](auto& c) -> auto& { return c.user; });
  restart_only(
      "group", [](auto& c) -> auto& { return c.group; });
  restart_only(
      "allow_root", [](auto& c) -> auto& { return c.allow_root; });
  restart_only(
      "maildir", [](auto& c) -> auto& { return c.maildir; });
  // Built into the resolver, the connection pools and their TLS contexts.
  restart_only(
      "dns.servers", [](auto& c) -> auto& { return c.dns.servers; });
  restart_only(
      "dns.timeout", [](auto& c) -> auto& { return c.dns.timeout; });
  restart_only(
      "delivery.mx_port", [](auto& c) -> auto& { return c.delivery.mx_port; });
  restart_only(
      "delivery.tls_policy_ca_file",
      [](auto& c) -> auto& { return c.delivery.tls_policy_ca_file; });
  restart_only(
      "fast_lane.ca_file", [](auto& c) -> auto& { return c.fast_lane.ca_file; });
  restart_only(
      "fast_lane.mx_fallback", [](auto& c) -> auto& { return c.fast_lane.mx_fallback; });
  restart_only(
      "fast_lane.mx_fallback_port", [](auto& c) -> auto& { return c.fast_lane.mx_fallback_port; });
  restart_only(
      "fast_lane.timeout", [](auto& c) -> auto& { return c.fast_lane.timeout; });
  restart_only(
      "fast_lane.idle_timeout", [](auto& c) -> auto& { return c.fast_lane.idle_timeout; });
  restart_only(
      "fast_lane.dialects", [](auto& c) -> auto& { return c.fast_lane.dialects; });
  restart_only(
      "recipient_probe.positive_ttl",
      [](auto& c) -> auto& { return c.recipient_probe.positive_ttl; });
  restart_only(
      "recipient_probe.negative_ttl",
      [](auto& c) -> auto& { return c.recipient_probe.negative_ttl; });
  // The queue, the spool and the token service take their settings once.
  restart_only(
      "queue.first_retry", [](auto& c) -> auto& { return c.queue.first_retry; });
  restart_only(
      "queue.max_retry_interval", [](auto& c) -> auto& { return c.queue.max_retry_interval; });
  restart_only(
      "queue.lifetime", [](auto& c) -> auto& { return c.queue.lifetime; });
  restart_only(
      "queue.delay_warning_time", [](auto& c) -> auto& { return c.queue.delay_warning_after; });
  restart_only(
      "queue.max_concurrent_deliveries",
      [](auto& c) -> auto& { return c.queue.max_concurrent_deliveries; });
  restart_only(
      "queue.backoff_factor", [](auto& c) -> auto& { return c.queue.backoff_factor; });
  restart_only(
      "queue.jitter", [](auto& c) -> auto& { return c.queue.jitter; });
  restart_only(
      "queue.segment_size", [](auto& c) -> auto& { return c.queue.segment_size; });
  restart_only(
      "queue.compaction_threshold", [](auto& c) -> auto& { return c.queue.compaction_threshold; });
  restart_only(
      "queue.min_free_space", [](auto& c) -> auto& { return c.queue.min_free_space; });
  restart_only(
      "tokens.store", [](auto& c) -> auto& { return c.tokens.store; });
  restart_only(
      "tokens.store.backend", [](auto& c) -> auto& { return c.tokens.store_backend; });
  restart_only(
      "tokens.store.redis", [](auto& c) -> auto& { return c.tokens.redis; });
  restart_only(
      "tokens.secrets_file", [](auto& c) -> auto& { return c.tokens.secrets_file; });
  restart_only(
      "tokens.temporary_validity", [](auto& c) -> auto& { return c.tokens.temporary_validity; });
  restart_only(
      "tokens.permanent_validity", [](auto& c) -> auto& { return c.tokens.permanent_validity; });
  restart_only(
      "tokens.clock_skew", [](auto& c) -> auto& { return c.tokens.clock_skew; });
  restart_only(
      "tokens.renew_before", [](auto& c) -> auto& { return c.tokens.renew_before; });
  restart_only(
      "tokens.sync_contacts_folder",
      [](auto& c) -> auto& { return c.tokens.sync_contacts_folder; });
  return changed;
}

Reloader::Reloader(server::ServerContext& context, UserDirectory& users, DeliveryRouter& router,
                   RemoteDelivery& remote_delivery)
    : context_(context), users_(users), router_(router), remote_delivery_(remote_delivery) {}

ReloadResult Reloader::reload_configuration(std::string_view trigger) {
  // Called from loop callbacks: nothing may escape into the loop.
  try {
    return reload(trigger);
  } catch (const std::exception& error) {
    spdlog::error("{}: reload refused, the configuration in force stays: {}", trigger,
                  error.what());
    return ReloadResult{.reloaded = false, .refusal = error.what(), .restart_only = {}};
  }
}

ReloadResult Reloader::reload(std::string_view trigger) {
  ReloadResult result;
  // Held to the end: the swap below may drop the context's last reference.
  const std::shared_ptr<const server::ServerGeneration> previous = context_.generation;
  const Config& running = *previous->config;
  const std::string file = running.source_file.string();
  auto refuse = [&](std::string reason) {
    spdlog::error("{}: reload refused, the configuration in force stays: {}", trigger, reason);
    result.refusal = std::move(reason);
    return result;
  };

  ConfigLoadResult loaded = load_config(running.source_file);
  if (!loaded.config) {
    if (loaded.errors.empty()) return refuse(file + ": cannot load");
    for (const ConfigError& error : loaded.errors) {
      spdlog::error("{}: reload refused: {}", trigger, error.to_string());
    }
    std::string reason = loaded.errors.front().to_string();
    if (loaded.errors.size() > 1) {
      reason += " (and " + std::to_string(loaded.errors.size() - 1) + " more errors)";
    }
    result.refusal = std::move(reason);
    spdlog::error("{}: reload refused, the configuration in force stays", trigger);
    return result;
  }
  auto wanted = std::make_shared<Config>(std::move(*loaded.config));
  result.restart_only = keep_restart_only_settings(running, *wanted);

  // Read again even when the file names are the same: a renewed certificate.
  std::string tls_error;
  SslContextPtr tls = reload_server_tls(*wanted, tls_error);
  if (!tls && !tls_error.empty()) return refuse("TLS certificate and key: " + tls_error);

  // The last step that may fail, so a refusal changes nothing: load() keeps
  // the users in force when the file is broken.
  if (auto error = users_.load()) return refuse("users file: " + *error);

  auto generation = std::make_shared<server::ServerGeneration>();
  generation->tls = std::shared_ptr<SSL_CTX>(tls.release(), SSL_CTX_free);
  generation->routes = std::make_shared<const RouteTable>(wanted->routes);
  generation->config = wanted;
  context_.generation = std::move(generation);
  router_.use_config(wanted);
  remote_delivery_.use_config(wanted->fast_lane);
  spdlog::set_level(spdlog::level::from_str(wanted->log_level));

  result.reloaded = true;
  spdlog::info(
      "{}: configuration reloaded from {}, TLS certificate and key read again, {} local users; "
      "new sessions use it, sessions in progress finish with what they started with",
      trigger, file, users_.all().size());
  if (!result.restart_only.empty()) {
    spdlog::warn("{}: changed settings that need a restart keep their running values: {}", trigger,
                 joined(result.restart_only));
  }
  return result;
}

control::Answer reload_answer(const ReloadResult& result) {
  if (!result.reloaded) return control::Answer{false, "refused: " + result.refusal, {}};
  control::Answer answer;
  answer.body = "reloaded\n";
  if (!result.restart_only.empty()) {
    answer.body += "needs a restart (running values kept): " + joined(result.restart_only) + "\n";
  }
  return answer;
}

}  // namespace stokend::wiring
