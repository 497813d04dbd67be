// The control server end to end: a real queue on a spool in a temporary
// folder, a fake delivery agent, a real libevent loop, and clients talking
// over a real unix socket from another thread.
#include "mta/control/control_server.h"

#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <chrono>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <future>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "common/event_handles.h"
#include "mta/control/control_client.h"
#include "mta/control/control_socket.h"
#include "queue/libevent_loop.h"
#include "queue/queue_manager.h"
#include "queue/spool.h"
#include "tests/support/temporary_directory.h"
#include "tests/support/test_loop.h"

namespace fs = std::filesystem;
using namespace std::chrono_literals;
using namespace stokend;
using namespace stokend::control;
using stokend::UniqueFd;
using stokend::queue::DeliveryAgent;
using stokend::queue::EnqueueResult;
using stokend::queue::Envelope;
using stokend::queue::QueuedMessage;
using stokend::queue::RecipientResult;
using stokend::testing::TemporaryDirectory;

namespace {

const std::string unknown_id = "00000000000000000bad";
const std::string deferral = "451 4.4.1 connect to 192.0.2.1 failed: Connection refused";

// Defers every recipient, so messages stay queued; counts the attempts.
class DeferringAgent : public DeliveryAgent {
 public:
  void deliver(const QueuedMessage&, std::span<const std::string> recipients, Done done) override {
    ++attempts;
    done(std::vector<RecipientResult>(
        recipients.size(),
        RecipientResult{RecipientResult::Outcome::temporary_failure, deferral, {}}));
  }
  std::size_t attempts = 0;
};

// What a raw client received: everything up to the daemon's close.
// end_sending: shut down our sending side after the request.
std::string raw_exchange(const fs::path& socket_path, const std::string& request,
                         bool end_sending) {
  int error_number = 0;
  UniqueFd socket = connect_to_control_socket(socket_path, 5s, error_number);
  if (!socket) return "connect failed: " + std::to_string(error_number);
  if (!request.empty()) {
    [[maybe_unused]] auto sent = ::send(socket.get(), request.data(), request.size(), MSG_NOSIGNAL);
  }
  if (end_sending) ::shutdown(socket.get(), SHUT_WR);
  std::string received;
  char buffer[4096];
  for (ssize_t count; (count = ::recv(socket.get(), buffer, sizeof buffer, 0)) > 0;) {
    received.append(buffer, static_cast<std::size_t>(count));
  }
  return received;
}

class ControlFixture {
 public:
  explicit ControlFixture(ControlLimits limits = {}) {
    stokend::queue::SpoolOptions options;
    options.directory = directory.path() / "spool";
    // Crash durability is the spool tests' business.
    options.data_sync = [](int) { return std::error_code{}; };
    spool_ = std::make_unique<stokend::queue::Spool>(loop_, options);
    auto recovered = spool_->open();
    REQUIRE_FALSE(recovered.error);
    stokend::queue::QueueSettings settings;
    settings.reporting_host = "mx.example.org";
    settings.retry.first_retry = std::chrono::hours(1);
    queue = std::make_unique<stokend::queue::QueueManager>(loop_, *spool_, agent, settings);
    queue->start(std::move(recovered.messages));
    server = std::make_unique<ControlServer>(events_.base(), socket_path, *queue, limits);
    REQUIRE(server->open().empty());
  }
  ~ControlFixture() {
    server.reset();
    queue.reset();
    spool_.reset();
  }

  template <typename Done>
  bool run_until(Done done, std::chrono::milliseconds limit = 10s) {
    return events_.run_until(done, limit);
  }

  // Lets the spool finish what it was asked to write.
  void settle() {
    REQUIRE(run_until([&] { return spool_->requests_in_flight() == 0; }));
  }

  // Queues a message and waits for its first (deferred) attempt.
  std::string enqueue(const std::string& data,
                      std::vector<std::string> recipients = {"bob@example.net"}) {
    const std::size_t attempts_before = agent.attempts;
    std::optional<EnqueueResult> result;
    Envelope envelope;
    envelope.sender = "alice@example.org";
    envelope.recipients = std::move(recipients);
    queue->enqueue(envelope, data, [&](EnqueueResult outcome) { result = outcome; });
    REQUIRE(run_until([&] { return result.has_value() && agent.attempts > attempts_before; }));
    REQUIRE(*result);
    settle();
    return result->id;
  }

  // Runs a client in another thread while the loop serves it.
  template <typename Client>
  auto serve(Client client) {
    auto future = std::async(std::launch::async, client);
    REQUIRE(run_until([&] { return future.wait_for(0s) == std::future_status::ready; }));
    auto value = future.get();
    settle();
    return value;
  }

  Answer ask(Command command, const std::string& id = {}) { return ask(Request{command, id}); }

  Answer ask(const Request& request) {
    auto [answer, error] = serve([this, request] {
      std::string error;
      auto answer = ask_daemon(socket_path, request, error, 5s);
      return std::pair(answer, error);
    });
    INFO(error);
    REQUIRE(answer);
    return *answer;
  }

  std::string raw(const std::string& request, bool end_sending = false) {
    return serve(
        [this, request, end_sending] { return raw_exchange(socket_path, request, end_sending); });
  }

  TemporaryDirectory directory;
  fs::path socket_path = directory.path() / "var" / "stokend.sock";
  DeferringAgent agent;

 private:
  // The spool's writer thread hands completions to the loop.
  stokend::testing::TestLoop events_{stokend::testing::new_thread_safe_base(), 5ms};
  stokend::queue::LibeventLoop loop_{events_.base()};
  std::unique_ptr<stokend::queue::Spool> spool_;

 public:
  std::unique_ptr<stokend::queue::QueueManager> queue;
  std::unique_ptr<ControlServer> server;
};

std::string mail(const std::string& subject) {
  return "From: alice@example.org\r\nSubject: " + subject + "\r\n\r\nHi\r\n";
}

bool contains(const std::string& text, const std::string& part) {
  return text.find(part) != std::string::npos;
}

}  // namespace

TEST_CASE("control server lists an empty queue", "[control]") {
  ControlFixture control;
  const Answer answer = control.ask(Command::list);
  CHECK(answer.ok);
  CHECK(answer.body == "Mail queue is empty\n");
}

TEST_CASE("control server lists and shows queued messages", "[control]") {
  ControlFixture control;
  const std::string first =
      control.enqueue(mail("first"), {"bob@example.net", "carol@example.net"});
  const std::string second = control.enqueue(mail("second"));

  const Answer listing = control.ask(Command::list);
  REQUIRE(listing.ok);
  INFO(listing.body);
  CHECK(listing.body.starts_with("-Queue ID-"));
  CHECK(contains(listing.body, "\n" + first + "  "));
  CHECK(contains(listing.body, "\n" + second + "  "));
  CHECK(contains(listing.body, "alice@example.org\n"));
  CHECK(contains(listing.body, "(" + deferral + ")\n"));
  CHECK(contains(listing.body, " carol@example.net\n"));
  CHECK(listing.body.ends_with("\n-- 2 messages, 3 pending recipients\n"));
  CHECK(listing.body.find(first) < listing.body.find(second));  // by arrival

  const Answer details = control.ask(Command::show, first);
  REQUIRE(details.ok);
  INFO(details.body);
  CHECK(
      details.body.starts_with("id:                 " + first + "\nstate:              queued\n"));
  CHECK(contains(details.body, "recipient:          carol@example.net\n"));
  CHECK(contains(details.body, "  attempts:         1\n"));
  CHECK(contains(details.body, "  last reply:       " + deferral + "\n"));
  CHECK(details.body.ends_with("header section:\nFrom: alice@example.org\nSubject: first\n"));
}

TEST_CASE("control server holds, releases and deletes once durable", "[control]") {
  ControlFixture control;
  const std::string id = control.enqueue(mail("hold me"));

  Answer answer = control.ask(Command::hold, id);
  CHECK(answer.ok);
  CHECK(answer.body == id + " held\n");
  CHECK(control.queue->show(id)->summary.held);
  CHECK(contains(control.ask(Command::list).body, "\n" + id + "! "));
  CHECK(contains(control.ask(Command::show, id).body, "state:              held\n"));

  answer = control.ask(Command::flush, id);
  CHECK(answer.body == "0 messages scheduled (" + id + " is held: release it to deliver it)\n");

  answer = control.ask(Command::release, id);
  CHECK(answer.ok);
  CHECK(answer.body == id + " released\n");
  CHECK_FALSE(control.queue->show(id)->summary.held);

  answer = control.ask(Command::remove, id);
  CHECK(answer.ok);
  CHECK(answer.body == id + " deleted\n");
  CHECK_FALSE(control.queue->show(id));
  CHECK(control.ask(Command::list).body == "Mail queue is empty\n");
}

TEST_CASE("control server flushes one message or all", "[control]") {
  ControlFixture control;
  const std::string first = control.enqueue(mail("one"));
  control.enqueue(mail("two"));
  REQUIRE(control.agent.attempts == 2);

  Answer answer = control.ask(Command::flush, first);
  CHECK(answer.ok);
  CHECK(answer.body == "1 message scheduled\n");
  REQUIRE(control.run_until([&] { return control.agent.attempts == 3; }));
  control.settle();

  answer = control.ask(Command::flush);
  CHECK(answer.body == "2 messages scheduled\n");
  REQUIRE(control.run_until([&] { return control.agent.attempts == 5; }));
  control.settle();
  CHECK(contains(control.ask(Command::show, first).body, "  attempts:         3\n"));
}

TEST_CASE("control server requeues: released, due at once, recorded", "[control]") {
  ControlFixture control;
  const std::string id = control.enqueue(mail("requeue me"));
  REQUIRE(control.agent.attempts == 1);
  REQUIRE(control.ask(Command::hold, id).ok);

  const Answer answer = control.ask(Command::requeue, id);
  CHECK(answer.ok);
  CHECK(answer.body == id + " requeued\n");
  CHECK_FALSE(control.queue->show(id)->summary.held);
  REQUIRE(control.run_until([&] { return control.agent.attempts == 2; }));
  control.settle();
  CHECK(contains(control.ask(Command::show, id).body, "  attempts:         2\n"));
}

TEST_CASE("control server changes a selection and counts it", "[control]") {
  ControlFixture control;
  const std::string net = control.enqueue(mail("net"), {"bob@example.net"});
  const std::string both = control.enqueue(mail("both"), {"carol@Example.NET", "dave@example.com"});
  const std::string com = control.enqueue(mail("com"), {"erin@example.com"});

  Answer answer = control.ask(Request::for_domain(Command::hold, "example.net"));
  CHECK(answer.ok);
  CHECK(answer.body ==
        "1 message held\n1 message for example.net left alone: they also have recipients "
        "elsewhere\n");
  CHECK(control.queue->show(net)->summary.held);
  CHECK_FALSE(control.queue->show(both)->summary.held);

  answer = control.ask(Request::for_domain(Command::remove, "example.com"));
  CHECK(answer.body ==
        "1 message deleted\n1 message for example.com left alone: they also have recipients "
        "elsewhere\n");
  CHECK_FALSE(control.queue->show(com));

  answer = control.ask(Request::every_message(Command::remove));
  CHECK(answer.ok);
  CHECK(answer.body == "2 messages deleted\n");
  CHECK(control.ask(Command::list).body == "Mail queue is empty\n");
  CHECK(control.ask(Request::every_message(Command::requeue)).body == "0 messages requeued\n");
}

TEST_CASE("control server answers no such message for unknown ids", "[control]") {
  ControlFixture control;
  for (Command command : {Command::show, Command::flush, Command::hold, Command::release,
                          Command::remove, Command::requeue}) {
    const Answer answer = control.ask(command, unknown_id);
    CHECK_FALSE(answer.ok);
    CHECK(answer.reason == "no such message");
  }
}

TEST_CASE("control server keeps dot lines of a message intact", "[control]") {
  ControlFixture control;
  const std::string id = control.enqueue(".Odd: field\r\nSubject: dots\r\n\r\n.\r\n");
  CHECK(control.raw("SHOW " + id + "\n").ends_with("\n..Odd: field\nSubject: dots\n.\n"));
  CHECK(control.ask(Command::show, id).body.ends_with("\n.Odd: field\nSubject: dots\n"));
}

TEST_CASE("control server lists a large queue in batches", "[control]") {
  ControlLimits limits;
  limits.listing_batch = 2;
  ControlFixture control(limits);
  std::vector<std::string> ids;
  for (int i = 0; i < 7; ++i) ids.push_back(control.enqueue(mail("batch " + std::to_string(i))));
  const Answer listing = control.ask(Command::list);
  for (const std::string& id : ids) CHECK(contains(listing.body, "\n" + id + "  "));
  CHECK(listing.body.ends_with("\n-- 7 messages, 7 pending recipients\n"));
}

TEST_CASE("control server refuses malformed and overlong requests", "[control]") {
  ControlFixture control;
  CHECK(control.raw("MAILQ\n") == "ERR unknown command\n.\n");
  CHECK(control.raw("SHOW ../../etc/passwd\r\n") == "ERR malformed queue id\n.\n");
  CHECK(control.raw(std::string(2000, 'A') + "\n") ==
        "ERR request line longer than 1000 octets\n.\n");
  CHECK(control.raw("LIST", true) == "ERR request line without its line end\n.\n");
  // One request per connection: what follows the first line is ignored.
  CHECK(control.raw("LIST\nDELETE " + unknown_id + "\n") == "OK\nMail queue is empty\n.\n");
}

TEST_CASE("control server hands RELOAD to the daemon's reload and passes its answer on",
          "[control]") {
  ControlFixture control;
  CHECK(control.raw("RELOAD\n") == "ERR reload is not available\n.\n");
  int reloads = 0;
  Answer outcome{false, "refused: stokend.yaml:3:5: bad", {}};
  control.server->on_reload([&] {
    ++reloads;
    return outcome;
  });
  CHECK(control.raw("RELOAD\n") == "ERR refused: stokend.yaml:3:5: bad\n.\n");
  outcome = Answer{true, {}, "reloaded\n"};
  const Answer answer = control.ask(Command::reload);
  CHECK(answer.ok);
  CHECK(answer.body == "reloaded\n");
  CHECK(reloads == 2);
}

TEST_CASE("control server ends a connection that sends no request in time", "[control]") {
  ControlLimits limits;
  limits.request_deadline = 200ms;
  ControlFixture control(limits);
  const auto started = std::chrono::steady_clock::now();
  const std::string answer = control.serve([&] {
    int error_number = 0;
    UniqueFd socket = connect_to_control_socket(control.socket_path, 5s, error_number);
    std::string received;
    char buffer[256];
    for (ssize_t count; (count = ::recv(socket.get(), buffer, sizeof buffer, 0)) > 0;) {
      received.append(buffer, static_cast<std::size_t>(count));
    }
    return received;
  });
  CHECK(answer == "ERR timeout: no whole request line within 200 ms\n.\n");
  CHECK(std::chrono::steady_clock::now() - started < 3s);
  REQUIRE(control.run_until([&] { return control.server->open_connections() == 0; }));
}

TEST_CASE("control server refuses connections over its limit", "[control]") {
  ControlLimits limits;
  limits.max_connections = 1;
  ControlFixture control(limits);
  int error_number = 0;
  UniqueFd idle = connect_to_control_socket(control.socket_path, 5s, error_number);
  REQUIRE(idle);
  REQUIRE(control.run_until([&] { return control.server->open_connections() == 1; }));
  const Answer refused = control.ask(Command::list);
  CHECK_FALSE(refused.ok);
  CHECK(refused.reason == "busy: too many control connections, try again");
  idle.reset();
  REQUIRE(control.run_until([&] { return control.server->open_connections() == 0; }));
  CHECK(control.ask(Command::list).ok);
}

TEST_CASE("control socket is private, replaces a stale file and is removed", "[control]") {
  TemporaryDirectory directory;
  const fs::path stale = directory.path() / "stokend.sock";
  {
    // A socket file nobody listens on, as a daemon that died leaves it.
    ControlSocketFile file;
    std::string error;
    UniqueFd listening = file.listen(stale, error);
    REQUIRE(listening);
    struct stat status {};
    REQUIRE(::stat(stale.c_str(), &status) == 0);
    CHECK(S_ISSOCK(status.st_mode));
    CHECK((status.st_mode & 0777) == 0600);
  }
  CHECK_FALSE(fs::exists(stale));  // removed with its owner

  {
    UniqueFd orphan(::socket(AF_UNIX, SOCK_STREAM, 0));
    sockaddr_un address{};
    address.sun_family = AF_UNIX;
    std::strcpy(address.sun_path, stale.c_str());
    REQUIRE(::bind(orphan.get(), reinterpret_cast<sockaddr*>(&address), sizeof address) == 0);
  }
  REQUIRE(fs::exists(stale));
  ControlSocketFile file;
  std::string error;
  UniqueFd listening = file.listen(stale, error);
  CHECK(error.empty());
  REQUIRE(listening);

  // A live socket is not taken over.
  ControlSocketFile second;
  CHECK_FALSE(second.listen(stale, error));
  CHECK(error == "control socket " + stale.string() + ": another stokend is listening on it");

  // Nor is a file that is not a socket.
  const fs::path regular = directory.path() / "not-a-socket";
  std::ofstream(regular) << "keep me";
  CHECK_FALSE(second.listen(regular, error));
  CHECK(error == "control socket " + regular.string() + ": exists and is not a socket");
  CHECK(fs::exists(regular));

  // A successor's socket at the same path is left alone.
  file.remove();
  listening.reset();
  UniqueFd successor = second.listen(stale, error);
  REQUIRE(successor);
  file.remove();
  CHECK(fs::exists(stale));
}

TEST_CASE("control client says when the daemon is not running", "[control]") {
  TemporaryDirectory directory;
  const fs::path missing = directory.path() / "stokend.sock";
  std::string error;
  CHECK_FALSE(ask_daemon(missing, Request{Command::list, {}}, error, 1s));
  CHECK(error == "cannot connect to stokend at " + missing.string() +
                     ": No such file or directory — is the daemon running?");
}
