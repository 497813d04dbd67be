// See daemon.h.
#include "mta/daemon.h"

#include <event2/thread.h>
#include <signal.h>
#include <sodium.h>
#include <spdlog/sinks/basic_file_sink.h>
#include <spdlog/sinks/stdout_sinks.h>
#include <spdlog/spdlog.h>

#include <memory>
#include <vector>

#include "mta/event_handles.h"
#include "mta/server/listener.h"
#include "mta/server/self_signed_certificate.h"
#include "mta/server/server_context.h"
#include "mta/server/tls_context.h"
#include "mta/store/maildir_store.h"
#include "mta/users.h"
#include "mta/worker_pool.h"
#include "queue/durable_file.h"

namespace stokend {
namespace {

constexpr auto shutdown_grace = std::chrono::seconds(10);

void setup_logging(const Config& config) {
  std::shared_ptr<spdlog::logger> logger;
  if (config.log_file.empty()) {
    logger = spdlog::stderr_logger_mt("stokend");
  } else {
    logger = spdlog::basic_logger_mt("stokend", config.log_file.string());
  }
  logger->set_pattern("%Y-%m-%dT%H:%M:%S.%e%z %l %v");
  logger->set_level(spdlog::level::from_str(config.log_level));
  logger->flush_on(spdlog::level::info);
  spdlog::set_default_logger(logger);
}

bool uses_tls(const Config& config) {
  for (const auto& listener : config.listeners) {
    if (listener.tls != TlsMode::none) return true;
  }
  return false;
}

SslContextPtr load_tls(const Config& config) {
  std::filesystem::path certificate = config.tls.certificate;
  std::filesystem::path key = config.tls.private_key;
  std::string error;
  if (certificate.empty()) {
    auto generated = server::ensure_self_signed_certificate(config.tls.generated_directory,
                                                            config.hostname, error);
    if (!generated) {
      spdlog::critical("cannot create a self-signed certificate: {}", error);
      return nullptr;
    }
    certificate = generated->certificate;
    key = generated->private_key;
    spdlog::info("using self-signed certificate {}", certificate.string());
  }
  auto context = server::make_server_tls_context(certificate, key, error);
  if (!context) spdlog::critical("{}", error);
  return context;
}

struct ShutdownState {
  event_base* base = nullptr;
  server::SessionRegistry* sessions = nullptr;
  std::vector<std::unique_ptr<server::Listener>>* listeners = nullptr;
  EventPtr grace_timer;
  bool stopping = false;
};

void on_signal(evutil_socket_t signal_number, short, void* argument) {
  auto* state = static_cast<ShutdownState*>(argument);
  if (state->stopping) {
    spdlog::warn("second signal: stopping now");
    event_base_loopbreak(state->base);
    return;
  }
  state->stopping = true;
  spdlog::info("signal {}: shutting down", signal_number);
  for (auto& listener : *state->listeners) listener->close();
  state->sessions->set_on_empty([base = state->base] { event_base_loopexit(base, nullptr); });
  state->sessions->request_shutdown_all();
  if (state->sessions->size() == 0) {
    event_base_loopexit(state->base, nullptr);
    return;
  }
  state->grace_timer.reset(evtimer_new(
      state->base,
      [](evutil_socket_t, short, void* base) {
        spdlog::warn("sessions still open after {}s: stopping", shutdown_grace.count());
        event_base_loopbreak(static_cast<event_base*>(base));
      },
      state->base));
  timeval grace{shutdown_grace.count(), 0};
  evtimer_add(state->grace_timer.get(), &grace);
}

}  // namespace

int run_daemon(const Config& config) {
  setup_logging(config);
  if (sodium_init() < 0) {
    spdlog::critical("libsodium failed to initialise");
    return 1;
  }
  // Worker threads hand completions back with event_active().
  evthread_use_pthreads();
  signal(SIGPIPE, SIG_IGN);

  for (const auto& directory : {config.spool_directory, config.maildir_root}) {
    if (auto error = durable::make_directories(directory)) {
      spdlog::critical("cannot create {}: {}", directory.string(), error.message());
      return 1;
    }
  }

  UserDirectory users(config.users_file);
  if (auto error = users.load()) {
    spdlog::critical("{}", *error);
    return 1;
  }
  spdlog::info("{} local users in {}", users.all().size(), config.users_file.string());

  SslContextPtr tls;
  if (uses_tls(config)) {
    tls = load_tls(config);
    if (!tls) return 1;
  }

  EventBasePtr base(event_base_new());
  if (!base) {
    spdlog::critical("cannot create the event loop");
    return 1;
  }
  store::MaildirStore mailstore(config.maildir_root, config.hostname);
  WorkerPool workers(base.get(), config.worker_threads);
  server::SessionRegistry sessions;
  server::ServerContext context{config,  base.get(), users,    mailstore,
                                workers, tls.get(),  sessions, hash_password("unknown user")};

  std::vector<std::unique_ptr<server::Listener>> listeners;
  for (const auto& listener_config : config.listeners) {
    auto listener = std::make_unique<server::Listener>(context, listener_config);
    if (auto error = listener->open(); !error.empty()) {
      spdlog::critical("{}", error);
      return 1;
    }
    listeners.push_back(std::move(listener));
  }

  ShutdownState shutdown{base.get(), &sessions, &listeners, nullptr, false};
  EventPtr terminate(evsignal_new(base.get(), SIGTERM, &on_signal, &shutdown));
  EventPtr interrupt(evsignal_new(base.get(), SIGINT, &on_signal, &shutdown));
  evsignal_add(terminate.get(), nullptr);
  evsignal_add(interrupt.get(), nullptr);

  spdlog::info("stokend ready: hostname={} domains={}", config.hostname,
               fmt::join(config.local_domains, ","));
  event_base_dispatch(base.get());

  listeners.clear();
  workers.stop();
  spdlog::info("stokend stopped");
  return 0;
}

}  // namespace stokend
