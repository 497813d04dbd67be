// See SessionRegistry in server_context.h.
#include "mta/server/server_context.h"
#include "mta/server/session.h"

namespace stokend::server {

SessionRegistry::Admission SessionRegistry::admit(const std::string& peer_address,
                                                  std::size_t max_total,
                                                  std::size_t max_per_address) const {
  if (sessions_.size() >= max_total) return Admission::too_many_total;
  auto found = per_address_.find(peer_address);
  if (found != per_address_.end() && found->second >= max_per_address) {
    return Admission::too_many_from_address;
  }
  return Admission::admitted;
}

void SessionRegistry::add(std::shared_ptr<Session> session) {
  ++per_address_[session->peer_address()];
  Session* key = session.get();
  sessions_.emplace(key, std::move(session));
}

void SessionRegistry::remove(Session* session) {
  auto found = sessions_.find(session);
  if (found == sessions_.end()) return;
  auto address = found->second->peer_address();
  if (auto count = per_address_.find(address);
      count != per_address_.end() && --count->second == 0) {
    per_address_.erase(count);
  }
  auto keep = std::move(found->second);  // destroyed after the map is consistent
  sessions_.erase(found);
  keep.reset();
  if (sessions_.empty() && on_empty_) on_empty_();
}

void SessionRegistry::request_shutdown_all() {
  std::vector<std::shared_ptr<Session>> snapshot;
  for (auto& [key, session] : sessions_) snapshot.push_back(session);
  for (auto& session : snapshot) session->request_shutdown();
}

}  // namespace stokend::server
