// See dovecot_userdb.h. The protocol's lines: dovecot_protocol.h.
#include "mta/auth/dovecot_userdb.h"

#include <spdlog/spdlog.h>

#include "common/ascii.h"
#include "mta/auth/dovecot_protocol.h"
#include "mta/defaults.h"
#include "mta/users.h"

namespace stokend::auth {

DovecotUserdb::DovecotUserdb(event_base* base, DovecotEndpoint endpoint,
                             std::chrono::milliseconds cache_ttl, std::chrono::milliseconds timeout)
    : base_(base),
      cache_ttl_(cache_ttl),
      timeout_(timeout),
      link_(base, std::move(endpoint),
            {.on_open = [this] { on_open(); },
             .on_line = [this](std::string_view line) { on_line(line); },
             .on_close = [this](const std::string&) { on_close(); }}),
      deferred_(base) {}

DovecotUserdb::~DovecotUserdb() = default;

std::uint32_t DovecotUserdb::next_id() { return next_request_id(last_id_, requests_); }

const User* DovecotUserdb::find(std::string_view address) const {
  auto found = cache_.find(ascii_lowercase(address));
  if (found == cache_.end() || found->second.answer.status != UserAnswer::Status::found ||
      found->second.expires <= std::chrono::steady_clock::now()) {
    return nullptr;
  }
  return &found->second.answer.user;
}

std::optional<UserAnswer> DovecotUserdb::lookup(const std::string& address, AnswerCallback done) {
  const std::string key = ascii_lowercase(address);
  if (auto cached = cache_.find(key); cached != cache_.end()) {
    if (cached->second.expires > std::chrono::steady_clock::now()) return cached->second.answer;
    cache_.erase(cached);
  }
  if (auto flying = in_flight_.find(key); flying != in_flight_.end()) {
    requests_.at(flying->second)->callbacks.push_back(std::move(done));
    return std::nullopt;
  }
  if (requests_.size() >= defaults::dovecot_max_pending) {
    spdlog::warn("dovecot userdb: {} lookups in progress already; RCPT fails for now",
                 requests_.size());
    deferred_.post([done = std::move(done)] {
      done(UserAnswer{UserAnswer::Status::temporary_failure, {}});
    });
    return std::nullopt;
  }
  auto request = std::make_unique<Request>();
  request->owner = this;
  request->id = next_id();
  request->address = key;
  request->callbacks.push_back(std::move(done));
  request->deadline.reset(evtimer_new(base_, on_deadline, request.get()));
  auto when = to_timeval(timeout_);
  evtimer_add(request->deadline.get(), &when);
  if (handshake_done_) send(*request);
  in_flight_.emplace(key, request->id);
  requests_.emplace(request->id, std::move(request));
  link_.open();  // nothing when open or connecting; may close at once (then on_close fails it)
  return std::nullopt;
}

void DovecotUserdb::send(Request& request) {
  link_.send("USER\t" + std::to_string(request.id) + "\t" + escape_field(request.address) +
             "\tservice=smtp");
  request.sent = true;
}

void DovecotUserdb::answer(std::uint32_t id, const UserAnswer& answer) {
  auto found = requests_.find(id);
  if (found == requests_.end()) return;
  std::vector<AnswerCallback> callbacks = std::move(found->second->callbacks);
  in_flight_.erase(found->second->address);
  if (answer.status != UserAnswer::Status::temporary_failure) {
    remember(found->second->address, answer);
  }
  requests_.erase(found);
  deferred_.post([callbacks = std::move(callbacks), answer] {
    for (const auto& callback : callbacks) callback(answer);
  });
}

void DovecotUserdb::remember(const std::string& address, const UserAnswer& answer) {
  if (cache_ttl_.count() == 0) return;
  const auto now = std::chrono::steady_clock::now();
  if (cache_.size() >= defaults::dovecot_cache_entries) {
    std::erase_if(cache_, [now](const auto& entry) { return entry.second.expires <= now; });
    // Full of fresh answers (many addresses tried at once): start over
    // rather than grow without bound.
    if (cache_.size() >= defaults::dovecot_cache_entries) cache_.clear();
  }
  cache_[address] = CacheEntry{answer, now + cache_ttl_};
}

void DovecotUserdb::on_deadline(evutil_socket_t, short, void* pointer) {
  auto* request = static_cast<Request*>(pointer);
  DovecotUserdb* self = request->owner;
  spdlog::warn("dovecot userdb {}: no answer within {} ms for {}; RCPT fails temporarily",
               self->link_.endpoint().describe(), self->timeout_.count(), request->address);
  const bool stuck = !self->handshake_done_;
  self->answer(request->id, UserAnswer{UserAnswer::Status::temporary_failure, {}});
  if (stuck && self->link_.state() != DovecotLink::State::closed) {
    self->link_.close("no handshake within " + std::to_string(self->timeout_.count()) + " ms");
  }
}

void DovecotUserdb::on_open() {
  handshake_done_ = false;
  link_.send("VERSION\t1\t0");
}

void DovecotUserdb::on_line(std::string_view text) {
  const auto parsed = parse_userdb_line(text);
  if (!parsed.line) {
    spdlog::error("dovecot userdb {}: a reply that does not parse ({}); reconnecting",
                  link_.endpoint().describe(), parsed.error);
    return link_.close("protocol error");
  }
  const UserdbLine& line = *parsed.line;
  using Kind = UserdbLine::Kind;
  if (line.kind == Kind::version) {
    if (line.major_version != 1) {
      spdlog::error("dovecot userdb {}: protocol version {} is not 1", link_.endpoint().describe(),
                    line.major_version);
      return link_.close("unsupported protocol version");
    }
    if (handshake_done_) return;
    handshake_done_ = true;
    link_.ready();
    spdlog::info("dovecot userdb {}: connected", link_.endpoint().describe());
    for (auto& [id, request] : requests_) {
      if (!request->sent) send(*request);
    }
    return;
  }
  if (line.kind != Kind::user && line.kind != Kind::notfound && line.kind != Kind::fail) return;
  auto found = requests_.find(line.id);
  if (found == requests_.end()) return;  // timed out since
  UserAnswer result;
  switch (line.kind) {
    case Kind::user: {
      result.status = UserAnswer::Status::found;
      result.user.address = found->second->address;
      for (const auto& [key, value] : line.fields) {
        if (key != "coi_filter") continue;
        if (auto filter = parse_coi_filter(value)) {
          result.user.coi_filter = *filter;
        } else {
          spdlog::warn("dovecot userdb: {} has coi_filter={}, not off, active or seen; off",
                       result.user.address, value);
        }
      }
      break;
    }
    case Kind::notfound:
      result.status = UserAnswer::Status::unknown;
      break;
    default:
      spdlog::warn("dovecot userdb {}: lookup of {} failed{}", link_.endpoint().describe(),
                   found->second->address, line.reason.empty() ? "" : ": " + line.reason);
      result.status = UserAnswer::Status::temporary_failure;
      break;
  }
  answer(line.id, result);
}

void DovecotUserdb::on_close() {
  handshake_done_ = false;
  std::vector<std::uint32_t> ids;
  for (const auto& [id, request] : requests_) ids.push_back(id);
  for (const auto id : ids) answer(id, UserAnswer{UserAnswer::Status::temporary_failure, {}});
}

}  // namespace stokend::auth
