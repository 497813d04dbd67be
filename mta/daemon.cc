// See daemon.h.
#include "mta/daemon.h"

#include <event2/thread.h>
#include <signal.h>
#include <sodium.h>
#include <spdlog/sinks/basic_file_sink.h>
#include <spdlog/sinks/stdout_sinks.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <functional>
#include <memory>
#include <optional>
#include <vector>

#include "common/durable_file.h"
#include "common/event_handles.h"
#include "dns/ares_resolver.h"
#include "mta/client/client_tls.h"
#include "mta/client/connection_pool.h"
#include "mta/client/mx_delivery.h"
#include "mta/client/remote_client.h"
#include "mta/control/control_server.h"
#include "mta/delivery/delivery_router.h"
#include "mta/delivery/recipient_probe.h"
#include "mta/delivery/remote_delivery.h"
#include "mta/server/listener.h"
#include "mta/server/self_signed_certificate.h"
#include "mta/server/server_context.h"
#include "mta/server/tls_context.h"
#include "mta/server/token_delivery.h"
#include "mta/store/maildir_cleanup.h"
#include "mta/store/maildir_store.h"
#include "mta/token_store_setup.h"
#include "mta/users.h"
#include "mta/worker_pool.h"
#include "queue/free_space.h"
#include "queue/libevent_loop.h"
#include "queue/queue_manager.h"
#include "queue/spool.h"
#include "queue/spool_lock.h"
#include "tokens/secret_rings.h"
#include "tokens/sqlite_token_store.h"
#include "tokens/token_authority.h"

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

// The fast lane's client: every wait at most fast_lane.timeout (a Token
// Server answers in milliseconds; a slow one must not hold chat mail back
// from its ordinary path), sessions kept for fast_lane.idle_timeout.
client::ClientSettings fast_lane_settings(const Config& config, SSL_CTX* tls_context) {
  client::ClientSettings settings;
  settings.helo_name = config.hostname;
  settings.tls_context = tls_context;
  settings.idle_timeout = config.fast_lane.idle_timeout;
  auto cap = [limit = config.fast_lane.timeout](std::chrono::milliseconds& timeout) {
    timeout = std::min(timeout, limit);
  };
  client::ClientTimeouts& timeouts = settings.timeouts;
  for (auto* timeout :
       {&timeouts.connect, &timeouts.greeting, &timeouts.command, &timeouts.data_initiation,
        &timeouts.data_block, &timeouts.data_done, &timeouts.tls_handshake, &timeouts.quit}) {
    cap(*timeout);
  }
  return settings;
}

queue::QueueSettings queue_settings(const Config& config) {
  using std::chrono::duration_cast;
  using std::chrono::seconds;
  queue::QueueSettings settings;
  settings.retry.first_retry = duration_cast<seconds>(config.queue.first_retry);
  settings.retry.max_retry_interval = duration_cast<seconds>(config.queue.max_retry_interval);
  settings.retry.lifetime = duration_cast<seconds>(config.queue.lifetime);
  settings.retry.delay_warning_after = duration_cast<seconds>(config.queue.delay_warning_after);
  settings.retry.backoff_factor = config.queue.backoff_factor;
  settings.retry.jitter = config.queue.jitter;
  settings.max_concurrent_deliveries = config.queue.max_concurrent_deliveries;
  settings.reporting_host = config.hostname;
  return settings;
}

// Housekeeping that runs on a worker thread every `interval` (it touches the
// disk, which must not stall the loop): expired tokens leaving the token
// store, stale Maildir tmp/ files. The job's own errors are its to log.
struct PeriodicJob {
  WorkerPool* workers = nullptr;
  std::function<void()> work;
  EventPtr timer;

  void start(event_base* base, std::chrono::seconds interval) {
    timer.reset(event_new(base, -1, EV_PERSIST, &PeriodicJob::on_timer, this));
    auto when = to_timeval(interval);
    evtimer_add(timer.get(), &when);
  }
  static void on_timer(evutil_socket_t, short, void* self) {
    static_cast<PeriodicJob*>(self)->run();
  }
  void run() {
    workers->submit([work = work]() {
      work();
      return WorkerPool::Completion{};
    });
  }
};

struct ShutdownState {
  queue::QueueManager* queue = nullptr;
  std::vector<client::ConnectionPool*> pools;  // MX delivery, the fast lane
  queue::Spool* spool = nullptr;
  WorkerPool* workers = nullptr;
  event_base* base = nullptr;
  server::SessionRegistry* sessions = nullptr;
  std::vector<std::unique_ptr<server::Listener>>* listeners = nullptr;
  EventPtr grace_timer;
  EventPtr drain_check;
  bool stopping = false;

  // Stopped once no session is open, no delivery is running and no spool
  // write or worker job is outstanding: a delivery's result must be on disk
  // before we exit, or a restart would deliver it again.
  bool drained() const {
    return sessions->size() == 0 && queue->statistics().in_flight == 0 &&
           spool->requests_in_flight() == 0 && workers->pending() == 0 &&
           std::none_of(pools.begin(), pools.end(),
                        [](const client::ConnectionPool* pool) { return pool->quitting(); });
  }
};

void on_drain_check(evutil_socket_t, short, void* argument) {
  auto* state = static_cast<ShutdownState*>(argument);
  // Connections released by deliveries that just finished say QUIT too.
  for (client::ConnectionPool* pool : state->pools) pool->close_idle();
  if (state->drained()) event_base_loopexit(state->base, nullptr);
}

void on_signal(evutil_socket_t signal_number, short, void* argument) {
  auto* state = static_cast<ShutdownState*>(argument);
  if (state->stopping) {
    spdlog::warn("second signal: stopping now");
    event_base_loopbreak(state->base);
    return;
  }
  state->stopping = true;
  spdlog::info("signal {}: shutting down", signal_number);
  state->queue->stop();
  for (auto& listener : *state->listeners) listener->close();
  state->sessions->request_shutdown_all();
  state->drain_check.reset(event_new(state->base, -1, EV_PERSIST, &on_drain_check, state));
  timeval every{0, 20 * 1000};
  event_add(state->drain_check.get(), &every);
  state->grace_timer.reset(evtimer_new(
      state->base,
      [](evutil_socket_t, short, void* base) {
        spdlog::warn("work still running after {}s: stopping", shutdown_grace.count());
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
  // One daemon per spool (queue/spool_lock.h): taken before anything reads
  // or changes the spool, held until we return. A second start stops here,
  // touching nothing.
  queue::SpoolLock spool_lock;
  if (auto error = spool_lock.acquire(config.spool_directory); !error.empty()) {
    spdlog::critical("{}", error);
    return 1;
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
  PeriodicJob maildir_cleanup{&workers,
                              [root = config.maildir_root] {
                                store::remove_stale_maildir_tmp_files(
                                    root, defaults::maildir_tmp_max_age);
                              },
                              nullptr};
  maildir_cleanup.start(base.get(), defaults::maildir_cleanup_interval);

  // The queue: recover what the spool holds before accepting anything new.
  queue::LibeventLoop loop(base.get());
  queue::SpoolOptions spool_options;
  spool_options.directory = config.spool_directory;
  spool_options.segment_size = config.queue.segment_size;
  spool_options.compaction_threshold = config.queue.compaction_threshold;
  queue::Spool spool(loop, spool_options);
  auto recovery = spool.open();
  if (recovery.error) {
    spdlog::critical("spool {}: {} failed: {}", config.spool_directory.string(),
                     recovery.error_step, recovery.error.message());
    return 1;
  }
  spdlog::info(
      "spool {}: {} messages recovered ({} segments, {} torn tails, {} quarantined, {} lost to "
      "damage)",
      config.spool_directory.string(), recovery.messages.size(), recovery.segments_read,
      recovery.torn_tails_discarded, recovery.files_quarantined, recovery.messages_lost);
  // Files a crash left in tmp/ (mta/store/maildir_cleanup.h): our own
  // unfinished deliveries at once, other files by age. On this thread, with
  // the spool ours and before the queue delivers anything; later daily, on a
  // worker, by age only.
  store::remove_maildir_tmp_files_at_start(config.maildir_root, defaults::maildir_tmp_max_age);

  // Outbound: DNS, pooled SMTP/LMTP connections with opportunistic STARTTLS.
  dns::ResolverOptions resolver_options;
  resolver_options.servers = config.dns.servers;
  resolver_options.timeout = config.dns.timeout;
  dns::AresResolver resolver(base.get(), resolver_options);
  std::string client_tls_error;
  // One context serves every policy: verification is switched on per
  // connection (client_tls.h), so opportunistic and "require" deliveries
  // never look at the trust anchors. They matter for "verify" only: the
  // configured CA file alone when there is one (an operator pinning a
  // private CA does not want every public CA trusted as well), else the
  // system store.
  client::ClientTlsOptions client_tls_options;
  client_tls_options.ca_file = config.delivery.tls_policy_ca_file.string();
  client_tls_options.use_system_store = client_tls_options.ca_file.empty();
  SslContextPtr client_tls = client::make_client_tls_context(client_tls_options, client_tls_error);
  if (!client_tls) {
    spdlog::critical("cannot create the client TLS context: {}", client_tls_error);
    return 1;
  }
  // The Submission Token extension: secrets (created on first start), the
  // token store, and synchronous delivery through the same mailstores.
  std::optional<tokens::SecretRings> token_secrets;
  std::unique_ptr<tokens::TokenStore> token_store;
  try {
    token_secrets.emplace(tokens::SecretRings::load_or_create(
        config.tokens.secrets_file.string(), tokens::TokenAuthority::system_clock()));
    // SQLite, mirrored into users' COI/Contacts folders (token_store_setup.h).
    token_store = open_token_store(config);
  } catch (const std::exception& error) {
    spdlog::critical("{}", error.what());
    return 1;
  }
  tokens::TokenAuthority token_authority(*token_secrets, *token_store, token_policy_of(config));
  client::ClientSettings client_settings;
  client_settings.helo_name = config.hostname;
  client_settings.tls_context = client_tls.get();
  client::ConnectionPool pool(base.get(), client_settings);
  client::MxDelivery mx(pool, resolver, config.delivery.mx_port);

  // The fast lane: its own pool, because its sessions are authenticated per
  // sender and kept warm longer, and its own trust anchors for Token Server
  // certificates (the fast lane always verifies).
  client::ClientTlsOptions fast_lane_tls_options;
  fast_lane_tls_options.ca_file = config.fast_lane.ca_file.string();
  fast_lane_tls_options.use_system_store = fast_lane_tls_options.ca_file.empty();
  SslContextPtr fast_lane_tls =
      client::make_client_tls_context(fast_lane_tls_options, client_tls_error);
  if (!fast_lane_tls) {
    spdlog::critical("cannot create the fast lane's TLS context: {}", client_tls_error);
    return 1;
  }
  client::ConnectionPool fast_lane_pool(base.get(),
                                        fast_lane_settings(config, fast_lane_tls.get()));
  client::RemoteClient fast_lane(fast_lane_pool, resolver,
                                 {config.fast_lane.mx_fallback, config.fast_lane.mx_fallback_port});
  RemoteDelivery remote_delivery(config.fast_lane, config.fast_lane.enabled ? &fast_lane : nullptr,
                                 token_authority, *token_store, workers, users);
  DeliveryRouter router(config, users, mailstore, workers, pool, mx, &remote_delivery);
  queue::QueueManager queue(loop, spool, router, queue_settings(config));
  queue.start(std::move(recovery.messages));

  server::TokenDelivery token_delivery(router, token_authority, *token_store, workers);
  // Expired tokens, and revocation marks that can no longer kill anything:
  // a temporary token created at or before a mark is dead by mark + its
  // validity; the clock skew allowance keeps a margin.
  const auto mark_age =
      token_authority.policy().temporary_validity + token_authority.policy().clock_skew;
  PeriodicJob token_cleanup{&workers,
                            [store = token_store.get(), mark_age] {
                              const std::int64_t now = tokens::TokenAuthority::system_clock();
                              try {
                                std::size_t removed =
                                    store->remove_expired(now, now - mark_age.count());
                                if (removed > 0) {
                                  spdlog::info("token store: {} expired entries removed", removed);
                                }
                              } catch (const std::exception& error) {
                                spdlog::error("token store cleanup: {}", error.what());
                              }
                            },
                            nullptr};
  token_cleanup.start(base.get(), defaults::token_store_cleanup_interval);
  token_cleanup.run();
  RouteTable routes(config.routes);

  server::SessionRegistry sessions;
  server::ServerContext context{config,  base.get(), users,    queue,
                                workers, tls.get(),  sessions, hash_password("unknown user")};
  context.tokens = &token_authority;
  context.token_secrets = &*token_secrets;
  context.token_store = token_store.get();
  context.token_delivery = &token_delivery;
  context.routes = &routes;
  // Recipients of domains relayed to the MX behind stokend, checked there.
  RecipientProbe recipient_probe(
      base.get(), pool,
      {config.recipient_probe.positive_ttl, config.recipient_probe.negative_ttl,
       defaults::recipient_probe_cache_entries});
  context.recipient_verifier = &recipient_probe;
  queue::FreeSpaceMonitor spool_space(
      config.spool_directory,
      config.queue.min_free_space.value_or(
          queue::defaults::min_free_space(config.limits.max_message_size)),
      queue::defaults::free_space_refresh);
  context.spool_space = &spool_space;

  // stokenctl queue ...: the administrator's way into the running queue.
  control::ControlServer control(base.get(), config.control_socket, queue);
  if (auto error = control.open(); !error.empty()) {
    spdlog::critical("{}", error);
    return 1;
  }

  std::vector<std::unique_ptr<server::Listener>> listeners;
  for (const auto& listener_config : config.listeners) {
    auto listener = std::make_unique<server::Listener>(context, listener_config);
    if (auto error = listener->open(); !error.empty()) {
      spdlog::critical("{}", error);
      return 1;
    }
    listeners.push_back(std::move(listener));
  }

  ShutdownState shutdown{&queue,     {&pool, &fast_lane_pool},
                         &spool,     &workers,
                         base.get(), &sessions,
                         &listeners, nullptr,
                         nullptr,    false};
  EventPtr terminate(evsignal_new(base.get(), SIGTERM, &on_signal, &shutdown));
  EventPtr interrupt(evsignal_new(base.get(), SIGINT, &on_signal, &shutdown));
  evsignal_add(terminate.get(), nullptr);
  evsignal_add(interrupt.get(), nullptr);

  spdlog::info("stokend ready: hostname={} domains={}", config.hostname,
               fmt::join(config.local_domains, ","));
  event_base_dispatch(base.get());

  listeners.clear();
  control.close();
  queue.stop();
  for (client::ConnectionPool* pool : shutdown.pools) {
    pool->close_idle();
    pool->abort_quitting();
  }
  workers.stop();
  spdlog::info("stokend stopped");
  return 0;
}

}  // namespace stokend
