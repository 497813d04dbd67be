// See recipient_probe.h.
#include "mta/delivery/recipient_probe.h"

#include <spdlog/spdlog.h>

#include "common/ascii.h"
#include "message/address.h"

namespace stokend {
namespace {

RecipientCheck from_reply(const client::Reply& reply) {
  if (reply.is_positive()) return {RecipientCheck::Verdict::exists, reply.to_string()};
  if (reply.is_permanent_failure()) return {RecipientCheck::Verdict::unknown, reply.to_string()};
  return {RecipientCheck::Verdict::unverifiable, reply.to_string()};
}

std::string describe(const client::CommandResult& result) {
  if (result.reply) return result.reply->to_string();
  return result.failure ? result.failure->reason : "no reply";
}

}  // namespace

RecipientProbe::RecipientProbe(event_base* base, client::ConnectionPool& pool,
                               RecipientProbeSettings settings, Clock clock)
    : deferred_(base), pool_(pool), settings_(settings), clock_(std::move(clock)) {}

void RecipientProbe::verify(const std::string& address, const Destination& next_hop, Done done) {
  const std::string key = next_hop.key() + " " + ascii_lowercase(address);
  if (auto cached = cache_.find(key); cached != cache_.end()) {
    if (cached->second.expires > clock_()) {
      return deferred_.post(
          [done = std::move(done), check = cached->second.check] { done(check); });
    }
    cache_.erase(cached);
  }
  auto& waiting = in_flight_[key];
  waiting.push_back(std::move(done));
  if (waiting.size() == 1) probe(key, address, next_hop);
}

void RecipientProbe::probe(const std::string& key, const std::string& address,
                           const Destination& next_hop) {
  pool_.acquire(next_hop, [this, key, address, hop = next_hop.describe()](
                              std::shared_ptr<client::SmtpClient> connection,
                              std::optional<client::Failure> failure) {
    if (failure) {
      return settle(key, {RecipientCheck::Verdict::unverifiable, failure->reason});
    }
    // The null sender, as Postfix's verify does: no bounce can come of it.
    connection->send_command(
        "MAIL FROM:<>", [this, key, address, hop, connection](client::CommandResult mail) {
          if (!mail.reply || !mail.reply->is_positive()) {
            pool_.release(connection, mail.reply.has_value());
            return settle(key, {RecipientCheck::Verdict::unverifiable,
                                hop + " refused MAIL FROM:<>: " + describe(mail)});
          }
          connection->send_command(
              "RCPT TO:<" + address + ">", [this, key, connection](client::CommandResult rcpt) {
                if (!rcpt.reply) {
                  pool_.release(connection, false);
                  return settle(key, {RecipientCheck::Verdict::unverifiable, describe(rcpt)});
                }
                RecipientCheck check = from_reply(*rcpt.reply);
                connection->send_command("RSET", [this, connection](client::CommandResult reset) {
                  pool_.release(connection, reset.reply && reset.reply->is_positive());
                });
                settle(key, std::move(check));
              });
        });
  });
}

void RecipientProbe::settle(const std::string& key, RecipientCheck check) {
  if (check.verdict != RecipientCheck::Verdict::unverifiable) {
    make_room();
    auto ttl = check.verdict == RecipientCheck::Verdict::exists ? settings_.positive_ttl
                                                                : settings_.negative_ttl;
    cache_[key] = {check, clock_() + ttl};
  }
  auto found = in_flight_.find(key);
  if (found == in_flight_.end()) return;
  std::vector<Done> waiting = std::move(found->second);
  in_flight_.erase(found);
  for (auto& done : waiting) done(check);
}

void RecipientProbe::make_room() {
  if (cache_.size() < settings_.max_entries) return;
  const auto now = clock_();
  std::erase_if(cache_, [now](const auto& entry) { return entry.second.expires <= now; });
  if (cache_.size() >= settings_.max_entries) {
    spdlog::warn("recipient probe: cache full ({} addresses), cleared", cache_.size());
    cache_.clear();
  }
}

}  // namespace stokend
