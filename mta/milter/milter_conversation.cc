// One conversation with one milter; see milter_conversation.h.
#include "mta/milter/milter_conversation.h"

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <sys/socket.h>
#include <sys/un.h>

#include <cerrno>
#include <cstring>

#include "common/socket_address.h"
#include "mta/defaults.h"

namespace stokend::milter {
namespace {

std::string seconds(std::chrono::milliseconds duration) {
  if (duration.count() % 1000 == 0) return std::to_string(duration.count() / 1000) + "s";
  return std::to_string(duration.count()) + "ms";
}

const char* step_name(int kind) {
  static const char* const names[] = {"CONNECT", "HELO", "MAIL", "RCPT", "DATA",
                                      "HEADER",  "EOH",  "BODY", "EOB"};
  return names[kind];
}

// Postfix's wording for the milter verdicts without a reply of their own.
MilterResult refusal(MilterResult::Outcome outcome) {
  MilterResult result;
  result.outcome = outcome;
  if (outcome == MilterResult::Outcome::reject) {
    result.code = 550;
    result.enhanced = "5.7.1";
    result.text = {"5.7.1 Command rejected"};
  } else {
    result.code = 451;
    result.enhanced = "4.7.1";
    result.text = {"4.7.1 Service unavailable - try again later"};
  }
  return result;
}

// Whether a modification reply is one the milter negotiated (SMFIF_*).
bool granted(Reply::Kind kind, std::uint32_t actions) {
  switch (kind) {
    case Reply::Kind::add_header:
      return actions & action::add_headers;
    case Reply::Kind::insert_header:
    case Reply::Kind::change_header:
      return actions & action::change_headers;
    case Reply::Kind::replace_body:
      return actions & action::change_body;
    case Reply::Kind::add_recipient:
      return actions & (action::add_recipients | action::add_recipients_with_args);
    case Reply::Kind::delete_recipient:
      return actions & action::delete_recipients;
    case Reply::Kind::change_sender:
      return actions & action::change_sender;
    case Reply::Kind::quarantine:
      return actions & action::quarantine;
    default:
      return false;
  }
}

}  // namespace

MilterConversation::MilterConversation(event_base* base, const MilterConfig& milter,
                                       const FilterRequest& request, const std::string& message,
                                       const std::string& sender,
                                       const std::vector<std::string>& recipients)
    : base_(base),
      milter_(milter),
      request_(request),
      message_(message),
      sender_(sender),
      recipients_(recipients),
      deadline_(base,
                [this] {
                  fail(negotiating_ || awaiting_
                           ? "no reply to " + describe_step() + " within " +
                                 seconds(milter_.command_timeout)
                           : "no connection within " + seconds(milter_.connect_timeout));
                }),
      whole_(base, [this] { fail("no verdict within " + seconds(whole_limit_)); }),
      start_later_(base, [this] { fail(result_.reason); }),
      reader_(defaults::milter_max_reply_size) {}

MilterConversation::~MilterConversation() { release_bufferevent(); }

void MilterConversation::release_bufferevent() {
  if (!connection_) return;
  // As in the SMTP client: the events leave the socket now, before the
  // descriptor is closed and its number reused.
  bufferevent_disable(connection_.get(), EV_READ | EV_WRITE);
  bufferevent_setcb(connection_.get(), nullptr, nullptr, nullptr, nullptr);
  connection_.reset();
}

void MilterConversation::start(Done done) {
  done_ = std::move(done);
  SocketAddress address;
  if (milter_.unix_socket) {
    sockaddr_un unix_address{};
    unix_address.sun_family = AF_UNIX;
    const std::string path = milter_.path.string();
    if (path.size() >= sizeof(unix_address.sun_path)) {
      result_.reason = "socket path too long";
    } else {
      std::memcpy(unix_address.sun_path, path.c_str(), path.size() + 1);
      std::memcpy(&address.storage, &unix_address, sizeof(unix_address));
      address.length = static_cast<socklen_t>(sizeof(unix_address));
    }
  } else if (auto inet = socket_address(milter_.host, milter_.port)) {
    address = *inet;
  } else {
    result_.reason = "not an IP address: " + milter_.host;
  }
  if (result_.reason.empty()) {
    socket_.reset(
        ::socket(address.storage.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0));
    if (!socket_) result_.reason = std::string("cannot create a socket: ") + std::strerror(errno);
  }
  if (result_.reason.empty()) {
    connection_.reset(bufferevent_socket_new(base_, socket_.get(), 0));
    bufferevent_setcb(connection_.get(), on_read, nullptr, on_event, this);
    bufferevent_enable(connection_.get(), EV_READ | EV_WRITE);
    if (bufferevent_socket_connect(connection_.get(), address.get(), address.length) != 0) {
      result_.reason = std::string("cannot connect: ") + std::strerror(errno);
      release_bufferevent();
    }
  }
  if (!result_.reason.empty()) {
    start_later_.arm(std::chrono::milliseconds(0));  // reported from the loop, not in start()
    return;
  }
  deadline_.arm(milter_.connect_timeout);
}

void MilterConversation::on_event(bufferevent*, short events, void* self) {
  auto* conversation = static_cast<MilterConversation*>(self);
  if (events & BEV_EVENT_CONNECTED) return conversation->connected();
  if (events & BEV_EVENT_ERROR) {
    const int error = EVUTIL_SOCKET_ERROR();
    if (!conversation->negotiating_ && !conversation->awaiting_) {
      return conversation->fail(std::string("cannot connect: ") + std::strerror(error));
    }
    return conversation->fail("connection lost during " + conversation->describe_step() + ": " +
                              std::strerror(error));
  }
  if (events & BEV_EVENT_EOF) {
    conversation->fail("connection closed by the milter during " + conversation->describe_step());
  }
}

void MilterConversation::connected() {
  negotiating_ = true;
  const std::string packet = encode_option_negotiation(action::all_offered, step::all_offered);
  bufferevent_write(connection_.get(), packet.data(), packet.size());
  deadline_.arm(milter_.command_timeout);
}

void MilterConversation::on_read(bufferevent* connection, void* self) {
  auto* conversation = static_cast<MilterConversation*>(self);
  std::weak_ptr<char> alive = conversation->alive_;
  evbuffer* input = bufferevent_get_input(connection);
  while (evbuffer_get_length(input) > 0) {
    const std::size_t length = evbuffer_get_contiguous_space(input);
    const auto* data = reinterpret_cast<const char*>(evbuffer_pullup(input, length));
    conversation->reader_.append(std::string_view(data, length));
    evbuffer_drain(input, length);
  }
  while (!alive.expired() && conversation->done_) {
    auto packet = conversation->reader_.next();
    if (!packet) {
      if (conversation->reader_.failed())
        conversation->fail("garbage: a packet length out of range");
      return;
    }
    ReplyParse parsed = parse_reply(*packet);
    if (!parsed.reply) return conversation->fail("garbage: " + parsed.error);
    if (conversation->negotiating_) {
      conversation->negotiated(*parsed.reply);
    } else {
      conversation->handle(*parsed.reply);
    }
  }
}

void MilterConversation::negotiated(const Reply& reply) {
  if (reply.kind != Reply::Kind::option_negotiation) {
    return fail("garbage: no option negotiation reply");
  }
  // Postfix speaks to milters of versions 2 to 6; the steps they may leave
  // out grew with the versions, the packets stayed the same.
  if (reply.version < 2 || reply.version > protocol_version) {
    return fail("unsupported milter protocol version " + std::to_string(reply.version));
  }
  if ((reply.actions & ~action::all_offered) != 0) {
    return fail("garbage: the milter asks for actions that were not offered");
  }
  actions_ = reply.actions;
  steps_ = reply.steps & step::all_offered;
  // SMFIC_DATA came with version 4: an older milter would not know it.
  if (reply.version < 4) steps_ |= step::no_data;
  negotiating_ = false;
  build_steps();
  // However often the milter says SMFIR_PROGRESS, the whole conversation
  // gets no more than a command timeout per reply it owes.
  std::size_t replies = 0;
  for (const Step& step : steps_to_send_) replies += step.reply ? 1 : 0;
  whole_limit_ = milter_.command_timeout * static_cast<long>(replies);
  whole_.arm(whole_limit_);
  send_steps();
}

std::vector<std::pair<std::string, std::string>> MilterConversation::macros_for(
    char command) const {
  const FilterClient& client = request_.client;
  switch (command) {
    case command::connect: {
      const std::string name = client.name.empty() ? "unknown" : client.name;
      return {{"j", request_.hostname},
              {"{daemon_name}", request_.daemon_name},
              {"v", "stokend"},
              {"_", name + " [" + client.address + "]"},
              {"{client_addr}", client.address},
              {"{client_name}", name},
              {"{client_port}", std::to_string(client.port)}};
    }
    case command::helo:
      if (client.tls_version.empty()) return {};
      return {{"{tls_version}", client.tls_version}};
    case command::mail: {
      std::vector<std::pair<std::string, std::string>> macros = {{"i", request_.queue_id}};
      if (!client.auth_user.empty()) {
        macros.emplace_back("{auth_type}", client.auth_method);
        macros.emplace_back("{auth_authen}", client.auth_user);
      }
      macros.emplace_back("{mail_addr}", sender_);
      return macros;
    }
    default:
      return {{"i", request_.queue_id}};
  }
}

void MilterConversation::build_steps() {
  using Kind = Step::Kind;
  auto add = [&](Kind kind, char code, std::string packet, std::uint32_t no_reply) {
    Step step{kind, {}, (steps_ & no_reply) == 0};
    if (const auto macros = macros_for(code); !macros.empty()) {
      step.packets = encode_macros(code, macros);
    }
    step.packets += packet;
    steps_to_send_.push_back(std::move(step));
  };
  const FilterClient& client = request_.client;
  if (!(steps_ & step::no_connect)) {
    add(Kind::connect, command::connect,
        encode_connect(client.name.empty() ? "unknown" : client.name, client.address, client.port),
        step::no_reply_connect);
  }
  if (!(steps_ & step::no_helo) && !client.helo.empty()) {
    add(Kind::helo, command::helo, encode_strings(command::helo, {client.helo}),
        step::no_reply_helo);
  }
  if (!(steps_ & step::no_mail)) {
    const std::string path = "<" + sender_ + ">";
    add(Kind::mail, command::mail, encode_strings(command::mail, {path}), step::no_reply_mail);
  }
  if (!(steps_ & step::no_rcpt)) {
    for (const std::string& recipient : recipients_) {
      const std::string path = "<" + recipient + ">";
      Step step{Kind::rcpt, {}, (steps_ & step::no_reply_rcpt) == 0};
      step.packets =
          encode_macros(command::rcpt, {{"i", request_.queue_id}, {"{rcpt_addr}", recipient}});
      step.packets += encode_strings(command::rcpt, {path});
      steps_to_send_.push_back(std::move(step));
    }
  }
  if (!(steps_ & step::no_data)) {
    add(Kind::data, command::data, encode(command::data), step::no_reply_data);
  }
  const HeaderSection headers = read_header_section(message_);
  if (!(steps_ & step::no_headers)) {
    for (const auto& [name, value] : headers.fields) {
      steps_to_send_.push_back({Kind::header, encode_strings(command::header, {name, value}),
                                (steps_ & step::no_reply_header) == 0});
    }
  }
  if (!(steps_ & step::no_end_of_headers)) {
    add(Kind::end_of_headers, command::end_of_headers, encode(command::end_of_headers),
        step::no_reply_end_of_headers);
  }
  if (!(steps_ & step::no_body)) {
    for (std::size_t at = headers.body_at; at < message_.size();
         at += defaults::milter_body_chunk_size) {
      Step step{Kind::body, {}, (steps_ & step::no_reply_body) == 0};
      step.body_at = at;
      step.body_size = std::min(defaults::milter_body_chunk_size, message_.size() - at);
      steps_to_send_.push_back(std::move(step));
    }
  }
  // The end of the body always gets an answer: the verdict.
  add(Kind::end_of_body, command::end_of_body, encode(command::end_of_body), 0);
}

void MilterConversation::send_steps() {
  while (next_step_ < steps_to_send_.size()) {
    const Step& step = steps_to_send_[next_step_];
    if (step.kind == Step::Kind::body) {
      const std::string packet =
          encode(command::body, std::string_view(message_).substr(step.body_at, step.body_size));
      bufferevent_write(connection_.get(), packet.data(), packet.size());
    } else {
      bufferevent_write(connection_.get(), step.packets.data(), step.packets.size());
    }
    waiting_for_ = next_step_++;
    if (step.reply) {
      awaiting_ = true;
      deadline_.arm(milter_.command_timeout);
      return;
    }
  }
}

std::string MilterConversation::describe_step() const {
  if (negotiating_) return "option negotiation";
  if (!awaiting_ || waiting_for_ >= steps_to_send_.size()) return "the connection";
  return step_name(static_cast<int>(steps_to_send_[waiting_for_].kind));
}

void MilterConversation::handle(const Reply& reply) {
  if (!awaiting_) return fail("garbage: a reply that no command asked for");
  const Step::Kind kind = steps_to_send_[waiting_for_].kind;
  const bool end_of_body = kind == Step::Kind::end_of_body;
  using Outcome = MilterResult::Outcome;
  switch (reply.kind) {
    case Reply::Kind::progress:
      deadline_.arm(milter_.command_timeout);
      return;
    case Reply::Kind::continue_:
      if (end_of_body) {
        result_.outcome = Outcome::accept;
        return finish(std::move(result_));
      }
      awaiting_ = false;
      return send_steps();
    case Reply::Kind::accept:
      result_.outcome = Outcome::accept;
      return finish(std::move(result_));
    case Reply::Kind::discard: {
      MilterResult result;
      result.outcome = Outcome::discard;
      return finish(std::move(result));
    }
    case Reply::Kind::reject:
      return finish(refusal(Outcome::reject));
    case Reply::Kind::tempfail:
      return finish(refusal(Outcome::tempfail));
    case Reply::Kind::reply_code: {
      MilterResult result;
      result.outcome = reply.code >= 500 ? Outcome::reject : Outcome::tempfail;
      result.code = reply.code;
      result.enhanced = reply.enhanced;
      result.text = reply.text;
      return finish(std::move(result));
    }
    case Reply::Kind::skip:
      // SMFIR_SKIP: no more body chunks; only after one, only if offered.
      if (kind != Step::Kind::body) return fail("garbage: skip outside the body");
      while (next_step_ < steps_to_send_.size() &&
             steps_to_send_[next_step_].kind == Step::Kind::body) {
        ++next_step_;
      }
      awaiting_ = false;
      return send_steps();
    case Reply::Kind::quarantine:
    case Reply::Kind::add_header:
    case Reply::Kind::insert_header:
    case Reply::Kind::change_header:
    case Reply::Kind::replace_body:
    case Reply::Kind::add_recipient:
    case Reply::Kind::delete_recipient:
    case Reply::Kind::change_sender:
      // The changes come only before the verdict on the end of the body.
      if (!end_of_body) return fail("garbage: a message change before the end of the body");
      if (!granted(reply.kind, actions_)) return fail("garbage: a change it did not negotiate");
      if (reply.kind == Reply::Kind::quarantine) {
        result_.quarantine = reply.value;
      } else {
        result_.edits.add(reply);
      }
      return;
    case Reply::Kind::shutdown:
      return fail("the milter is shutting down");
    case Reply::Kind::connection_failed:
      return fail("the milter reports a connection failure");
    case Reply::Kind::option_negotiation:
    case Reply::Kind::set_macro_list:
      return fail("garbage: an unexpected reply");
  }
}

void MilterConversation::fail(std::string reason) {
  MilterResult result;
  result.outcome = MilterResult::Outcome::failed;
  result.reason = std::move(reason);
  finish(std::move(result));
}

void MilterConversation::finish(MilterResult result) {
  if (!done_) return;
  deadline_.cancel();
  whole_.cancel();
  if (result.outcome != MilterResult::Outcome::failed && connection_ &&
      evbuffer_get_length(bufferevent_get_output(connection_.get())) == 0) {
    // Goodbye without waiting for anything: a milter closes on QUIT, and a
    // lost QUIT only costs it a closed connection. Five octets go out at
    // once into an empty socket buffer.
    const std::string quit = encode(command::quit);
    [[maybe_unused]] const auto sent =
        ::send(socket_.get(), quit.data(), quit.size(), MSG_NOSIGNAL | MSG_DONTWAIT);
  }
  release_bufferevent();
  socket_.reset();
  auto done = std::exchange(done_, {});
  done(std::move(result));  // may destroy this conversation
}

}  // namespace stokend::milter
