// See run_daemon.h. The list of what the daemon wires, in the order it is
// built; each step is a named helper of this folder, and every object here
// outlives the event loop.
#include "daemon/run_daemon.h"

#include <spdlog/spdlog.h>

#include "daemon/dovecot_clients.h"
#include "daemon/inbound.h"
#include "daemon/metrics_server.h"
#include "daemon/operator_signals.h"
#include "daemon/outbound.h"
#include "daemon/periodic_job.h"
#include "daemon/privileges.h"
#include "daemon/reload.h"
#include "daemon/shutdown.h"
#include "daemon/startup.h"
#include "daemon/storage.h"
#include "daemon/token_service.h"
#include "mta/control/control_server.h"
#include "mta/delivery/delivery_router.h"
#include "mta/delivery/recipient_probe.h"
#include "mta/delivery/remote_delivery.h"
#include "mta/milter/milter_chain.h"
#include "mta/server/token_delivery.h"
#include "mta/store/maildir_permissions.h"
#include "mta/store/maildir_store.h"
#include "queue/libevent_loop.h"

namespace stokend {

int run_daemon(const Config& config) {
  using namespace wiring;
  if (!wiring::setup_logging(config)) return 1;
  register_metrics();  // every metric shows from the first scrape, at zero
  // Started as root: what the start creates belongs to `user:`, and root
  // stays only for binding the ports (privileges.h).
  PrivilegeSteps privileges;
  if (!privileges.begin(config)) return 1;
  queue::SpoolLock spool_lock;  // held until we return
  if (!prepare_process() || !make_data_directories(config) || !privileges.act_as_user() ||
      !lock_spool(config, spool_lock)) {
    return 1;
  }
  const auto users = load_users(config);
  if (!users) return 1;
  bool aliases_failed = false;
  const auto aliases = load_aliases(config, aliases_failed);
  if (aliases_failed) return 1;
  auto tls = build_server_tls(config);  // read again by a reload (reload.h)
  if (!tls) return 1;
  const EventBasePtr base = make_event_base();
  if (!base) return 1;
  const auto mailstore = build_mailstore(config);
  if (!mailstore) return 1;
  WorkerPool workers(base.get(), config.worker_threads);
  PeriodicJob maildir_cleanup(base.get(), defaults::maildir_cleanup_interval, workers,
                              maildir_tmp_cleanup(config));

  // The queue: recover what the spool holds before accepting anything new.
  queue::LibeventLoop loop(base.get());
  queue::Spool spool(loop, spool_options(config));
  auto recovery = recover_spool(config, spool);
  if (!recovery) return 1;
  remove_maildir_leftovers_at_start(config);  // before the queue delivers anything

  const auto outbound = build_mx_delivery(config, base.get());
  if (!outbound) return 1;
  const auto tokens = build_token_service(config);
  if (!tokens) return 1;
  const auto fast_lane = build_fast_lane(config, base.get(), *outbound->resolver);
  if (!fast_lane) return 1;
  // Given the client even when disabled: a reload may switch it on.
  RemoteDelivery remote_delivery(config.fast_lane, fast_lane->client.get(), tokens->authority,
                                 *tokens->store, workers);
  DeliveryRouter router(config, *users, *mailstore, workers, *outbound->pool, *outbound->mx,
                        &remote_delivery);
  queue::QueueManager queue(loop, spool, router, queue_settings(config));
  queue.start(std::move(recovery->messages));

  server::TokenDelivery token_delivery(router.for_token_server(), tokens->authority, *tokens->store,
                                       workers);
  PeriodicJob token_cleanup(base.get(), defaults::token_store_cleanup_interval, workers,
                            token_store_cleanup(*tokens));
  token_cleanup.run();

  const auto recipient_probe = build_recipient_probe(config, base.get(), *outbound->pool);
  const auto spool_space = watch_spool_space(config);
  // auth: backend dovecot: logins and local users through Dovecot.
  const auto dovecot = start_dovecot_clients(config, base.get());
  UserLookup& session_users = dovecot.userdb ? *dovecot.userdb : static_cast<UserLookup&>(*users);
  // Always there: a reload may add milters; a session asks only when its
  // role has some.
  milter::MilterChain milters(base.get());
  server::SessionRegistry sessions;
  // What a reload replaces (reload.h); sessions keep the one they started with.
  server::ServerContext context{.generation = first_generation(config, std::move(*tls)),
                                .base = base.get(),
                                .users = session_users,
                                .queue = queue,
                                .workers = workers,
                                .sessions = sessions,
                                .dummy_password_hash = hash_password("unknown user"),
                                .sasl = dovecot.auth.get(),
                                .tokens = &tokens->authority,
                                .token_secrets = &tokens->secrets,
                                .token_store = tokens->store.get(),
                                .token_delivery = &token_delivery,
                                .recipient_verifier = recipient_probe.get(),
                                .spool_space = spool_space.get(),
                                .filter = &milters,
                                .aliases = aliases.get()};

  // SIGHUP and `stokenctl reload` both run this one reload.
  Reloader reloader(context, *users, router, remote_delivery);
  control::ControlServer control(base.get(), config.control_socket, queue);
  control.on_reload(
      [&reloader] { return reload_answer(reloader.reload_configuration("stokenctl reload")); });
  // Root again only to bind: the jobs already on the worker threads (token
  // store and Maildir cleanup) change or remove files, and create none.
  if (!privileges.act_as_root() || !open_control_socket(control) ||
      !privileges.give_to_user(config.control_socket)) {
    return 1;
  }
  auto listeners = start_listeners(context, config);
  // For good, before the loop reads a client byte.
  if (!listeners || !privileges.drop()) return 1;
  const OperatorSignals operator_signals(base.get(), reloader);

  ShutdownState shutdown{.queue = &queue,
                         .pools = {outbound->pool.get(), fast_lane->pool.get()},
                         .spool = &spool,
                         .workers = &workers,
                         .base = base.get(),
                         .sessions = &sessions,
                         .listeners = &*listeners,
                         .control = &control};
  MetricsServer metrics(
      base.get(), config.metrics,
      {.queue = &queue, .spool_space = spool_space.get(), .stopping = &shutdown.stopping});
  if (!start_metrics_server(metrics, config)) return 1;
  return serve(config, shutdown);
}

}  // namespace stokend
