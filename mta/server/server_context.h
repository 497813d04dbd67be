// What every session shares: configuration, users, the queue, TLS, worker
// threads and the registry of live sessions. The daemon builds one and hands
// it to the listeners; sessions only read it (and the registry).
//
// What a configuration reload replaces (settings, server TLS context, route
// table) is one immutable ServerGeneration. The listeners' context always
// holds the current one; a session copies the context when it is accepted,
// so it finishes with the generation it started with while new sessions
// take the new one (daemon/reload.h).
//
// Sessions reach the queue, the users and the worker threads through the
// narrow interfaces they need (queue/message_intake.h, mta/user_lookup.h,
// mta/work_runner.h), which QueueManager, UserDirectory and WorkerPool
// implement, so that the session state machine runs on fakes in tests.
#pragma once

#include <event2/event.h>
#include <openssl/ssl.h>

#include <cstddef>
#include <map>
#include <memory>
#include <string>

#include "mta/addresses/alias_file.h"
#include "mta/auth/sasl_authenticator.h"
#include "mta/config/config.h"
#include "mta/message_filter.h"
#include "mta/recipient_verifier.h"
#include "mta/routes.h"
#include "mta/user_lookup.h"
#include "mta/work_runner.h"
#include "queue/free_space.h"
#include "queue/message_intake.h"
#include "tokens/token_authority.h"

namespace stokend::server {

class Session;
class SynchronousDelivery;

// Owns the live sessions and counts them, in total and per client address,
// for the connection limits.
class SessionRegistry {
 public:
  enum class Admission { admitted, too_many_total, too_many_from_address };

  Admission admit(const std::string& peer_address, std::size_t max_total,
                  std::size_t max_per_address) const;
  void add(std::shared_ptr<Session> session);
  void remove(Session* session);  // the session's destructor may run here
  std::size_t size() const { return sessions_.size(); }
  // Asks every session to close (daemon shutdown).
  void request_shutdown_all();
  // Called when the last session ends (for shutdown).
  void set_on_empty(std::function<void()> callback) { on_empty_ = std::move(callback); }

 private:
  std::map<Session*, std::shared_ptr<Session>> sessions_;
  std::map<std::string, std::size_t> per_address_;
  std::function<void()> on_empty_;
};

// One generation of what a reload may change. Never modified once built:
// a reload builds a new one and swaps the pointer.
struct ServerGeneration {
  std::shared_ptr<const Config> config;
  std::shared_ptr<SSL_CTX> tls;              // null when no listener uses TLS
  std::shared_ptr<const RouteTable> routes;  // which local domains have a mailstore route
};

struct ServerContext {
  std::shared_ptr<const ServerGeneration> generation;  // never null
  event_base* base;
  UserLookup& users;
  queue::MessageIntake& queue;
  WorkRunner& workers;
  SessionRegistry& sessions;
  std::string dummy_password_hash;  // checked for unknown logins, so timing does not tell
  // AUTH through a provider's Dovecot (auth: backend dovecot); null: the
  // users file's password hashes.
  auth::SaslAuthenticator* sasl = nullptr;
  // The Submission Token extension (Token Server, GENSTOKEN, REVSTOKEN);
  // all null when it is not configured.
  tokens::TokenAuthority* tokens = nullptr;
  tokens::SecretRings* token_secrets = nullptr;   // refreshed when stokenctl rotates them
  tokens::TokenStore* token_store = nullptr;      // wallets, for harvested tokens
  SynchronousDelivery* token_delivery = nullptr;  // token_delivery.h
  // Asks the next hop whether a recipient of a recipient_probe domain exists.
  RecipientVerifier* recipient_verifier = nullptr;
  // Free space on the spool's file system, checked at MAIL (452 4.3.1 under
  // the reserve); null: not checked.
  queue::FreeSpaceMonitor* spool_space = nullptr;
  // The milters (mta/message_filter.h) between the end of the data and the
  // queue; null: none configured.
  MessageFilter* filter = nullptr;
  // The aliases map (mta/addresses/alias_file.h), asked at RCPT before the
  // users; null: no `aliases` configured.
  addresses::AliasFile* aliases = nullptr;

  const Config& config() const { return *generation->config; }
  SSL_CTX* tls() const { return generation->tls.get(); }  // nullptr when no listener uses TLS
  const RouteTable* routes() const { return generation->routes.get(); }
};

}  // namespace stokend::server
