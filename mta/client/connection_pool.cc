// See connection_pool.h.
#include "mta/client/connection_pool.h"

#include <spdlog/spdlog.h>

#include <algorithm>

namespace stokend::client {

ConnectionPool::ConnectionPool(event_base* base, ClientSettings settings)
    : base_(base),
      settings_(std::move(settings)),
      deferred_(base),
      alive_(std::make_shared<ConnectionPool*>(this)) {}

ConnectionPool::~ConnectionPool() {
  alive_.reset();
  close_idle();
}

void ConnectionPool::acquire(const Destination& destination, AcquireCallback done) {
  std::string key = destination.key();
  auto [position, inserted] = destinations_.try_emplace(key);
  DestinationState& state = position->second;
  if (inserted) state.destination = destination;

  while (!state.idle.empty()) {
    IdleConnection entry = std::move(state.idle.back());
    state.idle.pop_back();
    if (entry.connection->is_idle()) {
      deferred_.post([done = std::move(done), connection = std::move(entry.connection)] {
        done(connection, std::nullopt);
      });
      return;
    }
    --state.open;  // closed by the peer while idle
  }
  if (state.open < settings_.max_connections_per_destination) {
    ++state.open;
    return open_connection(key, std::move(done));
  }
  state.waiting.push_back(std::move(done));
}

void ConnectionPool::open_connection(const std::string& key, AcquireCallback done) {
  auto connection = SmtpClient::create(base_, destinations_.at(key).destination, settings_);
  std::weak_ptr<ConnectionPool*> pool = alive_;
  // The callback holds the connection until it has run (the client drops it
  // then), so a connection being opened stays alive without the pool.
  connection->connect(
      [pool, key, connection, done = std::move(done)](std::optional<Failure> failure) {
        auto alive = pool.lock();
        if (!alive) return connection->close();
        if (failure) {
          (*alive)->connection_gone(key);
          return done(nullptr, std::move(failure));
        }
        done(connection, std::nullopt);
      });
}

void ConnectionPool::release(std::shared_ptr<SmtpClient> connection, bool reusable) {
  if (!connection) return;
  std::string key = connection->destination().key();
  auto found = destinations_.find(key);
  if (found == destinations_.end()) return connection->close();  // not one of ours
  DestinationState& state = found->second;
  bool worn_out = connection->transactions_completed() >= settings_.max_transactions_per_connection;
  if (!reusable || worn_out || !connection->is_idle()) {
    connection->close();
    return connection_gone(key);
  }
  if (!state.waiting.empty()) {
    auto done = std::move(state.waiting.front());
    state.waiting.pop_front();
    deferred_.post([done = std::move(done), connection = std::move(connection)] {
      done(connection, std::nullopt);
    });
    return;
  }
  SmtpClient* raw = connection.get();
  auto timer = std::make_unique<Timer>(base_, [this, key, raw] { idle_expired(key, raw); });
  timer->arm(settings_.idle_timeout);
  state.idle.push_back({std::move(connection), std::move(timer)});
}

void ConnectionPool::idle_expired(const std::string& key, SmtpClient* connection) {
  auto found = destinations_.find(key);
  if (found == destinations_.end()) return;
  auto& idle = found->second.idle;
  auto entry = std::find_if(idle.begin(), idle.end(), [connection](const IdleConnection& item) {
    return item.connection.get() == connection;
  });
  if (entry == idle.end()) return;
  auto expired = std::move(entry->connection);
  // Erasing destroys the timer whose callback is running; the callback was
  // copied out before it was called (see Timer), so this is safe.
  idle.erase(entry);
  spdlog::debug("client pool: closing idle connection to {}", key);
  expired->close();
  connection_gone(key);
}

void ConnectionPool::connection_gone(const std::string& key) {
  auto found = destinations_.find(key);
  if (found == destinations_.end()) return;
  DestinationState& state = found->second;
  if (state.open > 0) --state.open;
  while (!state.waiting.empty() && state.open < settings_.max_connections_per_destination) {
    auto done = std::move(state.waiting.front());
    state.waiting.pop_front();
    ++state.open;
    open_connection(key, std::move(done));
  }
  forget_if_unused(key);
}

void ConnectionPool::forget_if_unused(const std::string& key) {
  auto found = destinations_.find(key);
  if (found == destinations_.end()) return;
  const DestinationState& state = found->second;
  if (state.open == 0 && state.idle.empty() && state.waiting.empty()) destinations_.erase(found);
}

void ConnectionPool::close_idle() {
  for (auto position = destinations_.begin(); position != destinations_.end();) {
    DestinationState& state = position->second;
    state.open -= std::min(state.open, state.idle.size());
    for (auto& entry : state.idle) {
      entry.connection->close();
      if (entry.connection->is_quitting()) quitting_.push_back(entry.connection);
    }
    state.idle.clear();
    if (state.open == 0 && state.waiting.empty()) {
      position = destinations_.erase(position);
    } else {
      ++position;
    }
  }
}

bool ConnectionPool::quitting() const {
  return std::any_of(quitting_.begin(), quitting_.end(), [](const auto& weak) {
    auto connection = weak.lock();
    return connection && connection->is_quitting();
  });
}

void ConnectionPool::abort_quitting() {
  for (auto& weak : quitting_) {
    if (auto connection = weak.lock()) connection->abort();
  }
  quitting_.clear();
}

std::size_t ConnectionPool::open_connections(const std::string& key) const {
  auto found = destinations_.find(key);
  return found == destinations_.end() ? 0 : found->second.open;
}

std::size_t ConnectionPool::idle_connections(const std::string& key) const {
  auto found = destinations_.find(key);
  return found == destinations_.end() ? 0 : found->second.idle.size();
}

std::size_t ConnectionPool::waiting_requests(const std::string& key) const {
  auto found = destinations_.find(key);
  return found == destinations_.end() ? 0 : found->second.waiting.size();
}

}  // namespace stokend::client
