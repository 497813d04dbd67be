// See dovecot_auth_client.h. The protocol's lines: dovecot_protocol.h.
#include "mta/auth/dovecot_auth_client.h"

#include <spdlog/spdlog.h>
#include <unistd.h>

#include "mta/auth/dovecot_protocol.h"
#include "mta/defaults.h"

namespace stokend::auth {

DovecotAuthClient::DovecotAuthClient(event_base* base, DovecotEndpoint endpoint,
                                     std::chrono::milliseconds timeout)
    : base_(base),
      timeout_(timeout),
      link_(base, std::move(endpoint),
            {.on_open = [this] { on_open(); },
             .on_line = [this](std::string_view line) { on_line(line); },
             .on_close = [this](const std::string&) { on_close(); }}),
      deferred_(base) {}

DovecotAuthClient::~DovecotAuthClient() = default;

std::uint32_t DovecotAuthClient::next_id() { return next_request_id(last_id_, requests_); }

void DovecotAuthClient::fail_soon(SaslCallback callback) {
  deferred_.post([callback = std::move(callback)] {
    callback(SaslStep{SaslStep::Kind::temporary_failure, {}});
  });
}

std::uint32_t DovecotAuthClient::begin(const SaslStart& start, SaslCallback callback) {
  const std::uint32_t id = next_id();
  if (requests_.size() >= defaults::dovecot_max_pending) {
    spdlog::warn("dovecot auth: {} exchanges in progress already; AUTH fails for now",
                 requests_.size());
    fail_soon(std::move(callback));
    return id;
  }
  // "nologin": only the credentials are checked, nobody logs in to a Dovecot
  // service; "secured": the client's connection is encrypted, so Dovecot's
  // disable_plaintext_auth lets plaintext mechanisms through.
  std::string line = "AUTH\t" + std::to_string(id) + "\t" + escape_field(start.mechanism) +
                     "\tservice=smtp\tnologin";
  if (start.secured) line += "\tsecured";
  if (!start.session_id.empty()) line += "\tsession=" + escape_field(start.session_id);
  if (!start.client_address.empty()) line += "\trip=" + escape_field(start.client_address);
  // RFC 4954 §4: "=" is an empty initial response.
  if (start.initial) line += "\tresp=" + escape_field(*start.initial == "=" ? "" : *start.initial);
  auto request = std::make_unique<Request>();
  request->owner = this;
  request->id = id;
  request->callback = std::move(callback);
  request->deadline.reset(evtimer_new(base_, on_deadline, request.get()));
  if (handshake_done_ && link_.state() == DovecotLink::State::open) {
    link_.send(line);
    request->waiting = Waiting::server;
  } else {
    request->line = std::move(line);
    request->waiting = Waiting::to_send;
  }
  arm_deadline(*request);
  requests_.emplace(id, std::move(request));
  link_.open();  // nothing when open or connecting; may close at once (then on_close fails it)
  return id;
}

void DovecotAuthClient::respond(std::uint32_t id, const std::string& response) {
  auto found = requests_.find(id);
  if (found == requests_.end()) return;
  Request& request = *found->second;
  if (request.waiting != Waiting::client || !handshake_done_) {
    // The connection was lost while the client thought: Dovecot forgot it.
    return finish(id, SaslStep{SaslStep::Kind::temporary_failure, {}});
  }
  link_.send("CONT\t" + std::to_string(id) + "\t" + escape_field(response));
  request.waiting = Waiting::server;
  arm_deadline(request);
}

void DovecotAuthClient::abandon(std::uint32_t id) {
  auto found = requests_.find(id);
  if (found == requests_.end()) return;
  *found->second->live = false;
  requests_.erase(found);  // Dovecot times its side out by itself
}

void DovecotAuthClient::arm_deadline(Request& request) {
  auto when = to_timeval(timeout_);
  evtimer_add(request.deadline.get(), &when);
}

void DovecotAuthClient::on_deadline(evutil_socket_t, short, void* pointer) {
  auto* request = static_cast<Request*>(pointer);
  DovecotAuthClient* self = request->owner;
  spdlog::warn("dovecot auth {}: no answer within {} ms (request {}); AUTH fails temporarily",
               self->link_.endpoint().describe(), self->timeout_.count(), request->id);
  const bool stuck = !self->handshake_done_;
  self->finish(request->id, SaslStep{SaslStep::Kind::temporary_failure, {}});
  // A connection that never finished its handshake is started over.
  if (stuck && self->link_.state() != DovecotLink::State::closed) {
    self->link_.close("no handshake within " + std::to_string(self->timeout_.count()) + " ms");
  }
}

void DovecotAuthClient::finish(std::uint32_t id, SaslStep step) {
  auto found = requests_.find(id);
  if (found == requests_.end()) return;
  Request& request = *found->second;
  evtimer_del(request.deadline.get());
  SaslCallback callback = request.callback;
  std::shared_ptr<bool> live = request.live;
  if (step.kind == SaslStep::Kind::challenge) {
    request.waiting = Waiting::client;
  } else {
    requests_.erase(found);
  }
  deferred_.post([callback = std::move(callback), live = std::move(live), step = std::move(step)] {
    if (*live) callback(step);
  });
}

void DovecotAuthClient::on_open() {
  handshake_done_ = false;
  handshake_mechanisms_.clear();
  // Our side of the handshake; Dovecot's VERSION, MECH... DONE come meanwhile.
  link_.send("VERSION\t1\t2");
  link_.send("CPID\t" + std::to_string(getpid()));
}

void DovecotAuthClient::on_line(std::string_view text) {
  const auto parsed = parse_auth_server_line(text);
  if (!parsed.line) {
    // The line itself is not logged: a challenge may be in it.
    spdlog::error("dovecot auth {}: a reply that does not parse ({}); reconnecting",
                  link_.endpoint().describe(), parsed.error);
    return link_.close("protocol error");
  }
  const AuthServerLine& line = *parsed.line;
  using Kind = AuthServerLine::Kind;
  if (!handshake_done_) {
    switch (line.kind) {
      case Kind::version:
        if (line.major_version != 1) {
          spdlog::error("dovecot auth {}: protocol version {} is not 1",
                        link_.endpoint().describe(), line.major_version);
          return link_.close("unsupported protocol version");
        }
        return;
      case Kind::mech:
        if (relayable_mechanism(line)) handshake_mechanisms_.push_back(line.mechanism);
        return;
      case Kind::done:
        break;
      default:
        return;  // SPID, CUID, COOKIE: not needed by a client that only authenticates
    }
    handshake_done_ = true;
    mechanisms_ = handshake_mechanisms_;
    link_.ready();
    std::string offered;
    for (const auto& name : mechanisms_) offered += " " + name;
    spdlog::info("dovecot auth {}: connected, mechanisms:{}", link_.endpoint().describe(),
                 offered.empty() ? " none" : offered);
    for (auto& [id, request] : requests_) {
      if (request->waiting != Waiting::to_send) continue;
      link_.send(request->line);
      request->line.clear();
      request->waiting = Waiting::server;
    }
    return;
  }
  if (line.kind != Kind::ok && line.kind != Kind::cont && line.kind != Kind::fail) return;
  auto found = requests_.find(line.id);
  // Timed out or abandoned since: Dovecot's late answer goes nowhere.
  if (found == requests_.end() || found->second->waiting != Waiting::server) return;
  switch (line.kind) {
    case Kind::ok:
      return finish(line.id, SaslStep{SaslStep::Kind::ok, line.user});
    case Kind::cont:
      return finish(line.id, SaslStep{SaslStep::Kind::challenge, line.challenge});
    default:
      if (line.temporary) {
        spdlog::warn("dovecot auth {}: temporary failure for request {}{}",
                     link_.endpoint().describe(), line.id,
                     line.reason.empty() ? "" : ": " + line.reason);
        return finish(line.id, SaslStep{SaslStep::Kind::temporary_failure, {}});
      }
      return finish(line.id, SaslStep{SaslStep::Kind::failure, line.user});
  }
}

void DovecotAuthClient::on_close() {
  handshake_done_ = false;
  std::vector<std::uint32_t> failed;
  for (auto& [id, request] : requests_) {
    if (request->waiting == Waiting::client) {
      request->waiting = Waiting::dead;  // fails when the client answers (respond)
    } else {
      failed.push_back(id);
    }
  }
  for (const auto id : failed) finish(id, SaslStep{SaslStep::Kind::temporary_failure, {}});
}

}  // namespace stokend::auth
