// The outbound SMTP/LMTP client against real peers: Postfix's smtp-sink
// (told to refuse chosen commands), a listener that never answers, and a
// scripted greeter for replies no real server sends.
#include <event2/listener.h>

#include <catch2/catch.hpp>
#include <chrono>
#include <memory>
#include <optional>
#include <string>

#include "mta/client/client_tls.h"
#include "mta/client/smtp_client.h"
#include "tests/support/client_test_support.h"

using namespace stokend;
using namespace stokend::client;
using namespace client_test;

namespace {

const std::string sample_message =
    "From: <sender@a.test>\r\n"
    "To: <one@b.test>, <two@b.test>\r\n"
    "Subject: client test\r\n"
    "Message-ID: <client-test-1@a.test>\r\n"
    "\r\n"
    "first line\r\n"
    ".a line starting with a dot\r\n"
    "..two dots\r\n"
    ".\r\n"
    "last line\r\n";

ClientSettings test_settings() {
  ClientSettings settings;
  settings.helo_name = "client.a.test";
  settings.timeouts.quit = 2s;
  return settings;
}

Destination sink_destination(const SmtpSink& sink, Protocol protocol = Protocol::smtp) {
  if (!sink.socket_path().empty()) return Destination::unix_socket(protocol, sink.socket_path());
  return Destination::tcp(protocol, "127.0.0.1", sink.port());
}

Envelope two_recipients() {
  Envelope envelope;
  envelope.sender = "sender@a.test";
  envelope.recipients = {"one@b.test", "two@b.test"};
  return envelope;
}

std::optional<Failure> connect(TestLoop& loop, SmtpClient& client) {
  bool done = false;
  std::optional<Failure> failure;
  client.connect([&](std::optional<Failure> result) {
    failure = std::move(result);
    done = true;
  });
  REQUIRE(loop.run_until([&] { return done; }));
  return failure;
}

TransactionResult transact(TestLoop& loop, SmtpClient& client, Envelope envelope,
                           const std::string& message = sample_message) {
  std::optional<TransactionResult> result;
  client.send_transaction(std::move(envelope), std::make_shared<const std::string>(message),
                          [&](TransactionResult outcome) { result = std::move(outcome); });
  REQUIRE(loop.run_until([&] { return result.has_value(); }));
  return *result;
}

std::shared_ptr<SmtpClient> connected_client(TestLoop& loop, const Destination& destination,
                                             ClientSettings settings = test_settings()) {
  auto client = SmtpClient::create(loop.base(), destination, settings);
  auto failure = connect(loop, *client);
  if (failure) FAIL("connect failed: " << failure->reason);
  return client;
}

void check_all(const TransactionResult& result, DeliveryStatus status, int code) {
  for (const auto& recipient : result.recipients) {
    INFO(recipient.address << ": " << recipient.reply_code << " " << recipient.text);
    CHECK(recipient.status == status);
    CHECK(recipient.reply_code == code);
  }
}

// The message as smtp-sink dumps it: LF line endings, dots unstuffed, one
// empty line after it.
bool dump_holds(const std::string& dump, const std::string& message) {
  std::string expected = with_lf(message) + "\n";
  return dump.size() >= expected.size() &&
         dump.compare(dump.size() - expected.size(), expected.size(), expected) == 0;
}

std::vector<std::string> wait_for_dumps(const SmtpSink& sink, std::size_t count) {
  wait_until([&] { return sink.dumps().size() >= count; }, 5s);
  return sink.dumps();
}

// Accepts connections on the loop and greets each with a fixed text, for
// replies no real server sends.
class ScriptedGreeter {
 public:
  ScriptedGreeter(event_base* base, std::string banner) : banner_(std::move(banner)) {
    sockaddr_in address{};
    address.sin_family = AF_INET;
    address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    listener_.reset(evconnlistener_new_bind(base, &ScriptedGreeter::on_accept, this,
                                            LEV_OPT_CLOSE_ON_FREE | LEV_OPT_CLOSE_ON_EXEC, 8,
                                            reinterpret_cast<sockaddr*>(&address), sizeof address));
    REQUIRE(listener_);
    socklen_t length = sizeof address;
    ::getsockname(evconnlistener_get_fd(listener_.get()), reinterpret_cast<sockaddr*>(&address),
                  &length);
    port_ = ntohs(address.sin_port);
  }
  std::uint16_t port() const { return port_; }

 private:
  static void on_accept(evconnlistener*, evutil_socket_t socket, sockaddr*, int, void* self) {
    auto* greeter = static_cast<ScriptedGreeter*>(self);
    greeter->accepted_.emplace_back(socket);
    // Small enough for the socket buffer: this write does not block.
    [[maybe_unused]] auto written =
        ::write(socket, greeter->banner_.data(), greeter->banner_.size());
  }

  std::string banner_;
  stokend::ListenerPtr listener_;
  std::vector<stokend::UniqueFd> accepted_;
  std::uint16_t port_ = 0;
};

}  // namespace

TEST_CASE("SMTP delivery to smtp-sink with pipelining", "[client]") {
  TestLoop loop;
  SmtpSink sink;
  auto client = connected_client(loop, sink_destination(sink));
  CHECK(client->capabilities().pipelining);
  CHECK(client->capabilities().eight_bit_mime);
  CHECK(client->capabilities().enhanced_status_codes);
  CHECK(client->capabilities().has("XFORWARD"));
  CHECK(client->capabilities().parameters("AUTH") == "PLAIN LOGIN");
  CHECK_FALSE(client->tls_active());

  Envelope envelope = two_recipients();
  envelope.eight_bit_body = true;
  auto result = transact(loop, *client, envelope);
  CHECK_FALSE(result.connection_failure);
  CHECK(result.message_sent);
  CHECK(result.all_delivered());
  REQUIRE(result.recipients.size() == 2);
  CHECK(result.recipients[0].address == "one@b.test");
  CHECK(result.recipients[1].address == "two@b.test");
  check_all(result, DeliveryStatus::delivered, 250);
  CHECK(result.recipients[0].enhanced_code == "2.0.0");

  auto dumps = wait_for_dumps(sink, 1);
  REQUIRE(dumps.size() == 1);
  CHECK(dumps[0].find("X-Mail-Args: <sender@a.test> BODY=8BITMIME\n") != std::string::npos);
  CHECK(dumps[0].find("X-Rcpt-Args: <one@b.test>\nX-Rcpt-Args: <two@b.test>\n") !=
        std::string::npos);
  CHECK(dumps[0].find("X-Helo-Args: client.a.test\n") != std::string::npos);
  CHECK(dump_holds(dumps[0], sample_message));

  CHECK(loop.run_until([&] { return client->is_idle(); }));
  client->close();
  CHECK(loop.run_until([&] { return client->is_closed(); }));
}

TEST_CASE("SMTP delivery one command at a time", "[client]") {
  TestLoop loop;
  std::vector<std::string> sink_options;
  ClientSettings settings = test_settings();
  SECTION("the server does not offer PIPELINING") { sink_options = {"-p"}; }
  SECTION("the client does not use PIPELINING") { settings.use_pipelining = false; }
  SmtpSink sink(sink_options);
  auto client = connected_client(loop, sink_destination(sink), settings);
  auto result = transact(loop, *client, two_recipients());
  CHECK(result.all_delivered());
  check_all(result, DeliveryStatus::delivered, 250);
  auto dumps = wait_for_dumps(sink, 1);
  REQUIRE(dumps.size() == 1);
  CHECK(dump_holds(dumps[0], sample_message));
}

TEST_CASE("a refused RCPT decides that recipient's result", "[client]") {
  TestLoop loop;
  SECTION("5xx: permanent") {
    SmtpSink sink({"-f", "RCPT"});
    auto client = connected_client(loop, sink_destination(sink));
    auto result = transact(loop, *client, two_recipients());
    check_all(result, DeliveryStatus::permanent, 500);
    CHECK(result.recipients[0].enhanced_code == "5.3.0");
    CHECK_FALSE(result.message_sent);  // nobody accepted: no DATA
    CHECK_FALSE(result.connection_failure);
    // The connection is still good for the next message.
    CHECK(loop.run_until([&] { return client->is_idle(); }));
    for (const auto& dump : sink.dumps()) CHECK(dump.find("first line") == std::string::npos);
  }
  SECTION("4xx: temporary") {
    SmtpSink sink({"-r", "RCPT"});
    auto client = connected_client(loop, sink_destination(sink));
    auto result = transact(loop, *client, two_recipients());
    check_all(result, DeliveryStatus::temporary, 450);
    CHECK(result.recipients[1].enhanced_code == "4.3.0");
  }
}

TEST_CASE("a temporary failure at DATA or at the end of data", "[client]") {
  TestLoop loop;
  SECTION("4xx to DATA") {
    SmtpSink sink({"-r", "DATA"});
    auto client = connected_client(loop, sink_destination(sink));
    auto result = transact(loop, *client, two_recipients());
    check_all(result, DeliveryStatus::temporary, 450);
    CHECK_FALSE(result.message_sent);
  }
  SECTION("4xx to the final dot") {
    SmtpSink sink({"-r", "."});
    auto client = connected_client(loop, sink_destination(sink));
    auto result = transact(loop, *client, two_recipients());
    check_all(result, DeliveryStatus::temporary, 450);
    CHECK(result.message_sent);
  }
  SECTION("5xx to the final dot") {
    SmtpSink sink({"-f", "."});
    auto client = connected_client(loop, sink_destination(sink));
    auto result = transact(loop, *client, two_recipients());
    check_all(result, DeliveryStatus::permanent, 500);
  }
}

TEST_CASE("5xx to MAIL makes every recipient permanent", "[client]") {
  TestLoop loop;
  SmtpSink sink({"-f", "MAIL"});
  auto client = connected_client(loop, sink_destination(sink));
  auto result = transact(loop, *client, two_recipients());
  check_all(result, DeliveryStatus::permanent, 500);
  CHECK_FALSE(result.message_sent);
  CHECK_FALSE(result.connection_failure);
  CHECK(loop.run_until([&] { return client->is_idle(); }));
}

TEST_CASE("nothing listening: a temporary connection failure", "[client]") {
  TestLoop loop;
  auto destination = Destination::tcp(Protocol::smtp, "127.0.0.1", free_loopback_port());
  auto client = SmtpClient::create(loop.base(), destination, test_settings());
  auto failure = connect(loop, *client);
  REQUIRE(failure);
  CHECK(failure->enhanced_code == "4.4.1");
  CHECK(failure->reason.find("Connection refused") != std::string::npos);
  CHECK(client->is_closed());

  // A transaction on the dead connection fails every recipient temporarily.
  auto result = transact(loop, *client, two_recipients());
  REQUIRE(result.connection_failure);
  check_all(result, DeliveryStatus::temporary, 0);
}

TEST_CASE("a unix socket path with nobody behind it", "[client]") {
  TestLoop loop;
  TemporaryDirectory directory;
  auto destination =
      Destination::unix_socket(Protocol::lmtp, (directory.path() / "absent").string());
  auto client = SmtpClient::create(loop.base(), destination, test_settings());
  auto failure = connect(loop, *client);
  REQUIRE(failure);
  CHECK(failure->enhanced_code == "4.4.1");
  CHECK(failure->reason.find("No such file") != std::string::npos);
}

TEST_CASE("a server that never greets: a temporary failure at the deadline", "[client]") {
  TestLoop loop;
  SilentListener silent;
  ClientSettings settings = test_settings();
  settings.timeouts.greeting = 300ms;
  auto client = SmtpClient::create(
      loop.base(), Destination::tcp(Protocol::smtp, "127.0.0.1", silent.port()), settings);
  auto started = std::chrono::steady_clock::now();
  auto failure = connect(loop, *client);
  auto elapsed = std::chrono::steady_clock::now() - started;
  REQUIRE(failure);
  CHECK(failure->enhanced_code == "4.4.2");
  CHECK(failure->reason.find("greeting") != std::string::npos);
  CHECK(elapsed >= 250ms);
  CHECK(elapsed < 3s);
}

TEST_CASE("one connection carries several messages", "[client]") {
  TestLoop loop;
  SmtpSink sink;
  auto client = connected_client(loop, sink_destination(sink));
  std::string second = sample_message;
  second.replace(second.find("client-test-1"), 13, "client-test-2");
  auto first_result = transact(loop, *client, two_recipients());
  CHECK(first_result.all_delivered());
  // The next transaction may start while RSET is still being answered.
  REQUIRE(client->is_idle());
  auto second_result = transact(loop, *client, two_recipients(), second);
  CHECK(second_result.all_delivered());
  CHECK(client->transactions_completed() == 2);
  auto dumps = wait_for_dumps(sink, 2);
  REQUIRE(dumps.size() == 2);
  bool first_seen = dump_holds(dumps[0], sample_message) || dump_holds(dumps[1], sample_message);
  bool second_seen = dump_holds(dumps[0], second) || dump_holds(dumps[1], second);
  CHECK(first_seen);
  CHECK(second_seen);
  // Both came over one connection: one EHLO, one session.
  CHECK(dumps[0].find("X-Client-Proto: ESMTP") != std::string::npos);
}

TEST_CASE("TLS required but not offered: a clear temporary failure", "[client]") {
  TestLoop loop;
  SmtpSink sink;
  std::string error;
  auto context = make_client_tls_context({}, error);
  REQUIRE(context);
  ClientSettings settings = test_settings();
  settings.tls_context = context.get();
  Destination destination = sink_destination(sink);
  destination.tls_policy = TlsPolicy::required;
  auto client = SmtpClient::create(loop.base(), destination, settings);
  auto failure = connect(loop, *client);
  REQUIRE(failure);
  CHECK(failure->enhanced_code == "4.7.4");
  CHECK(failure->reason ==
        "TLS is required, but was not offered by host [127.0.0.1]:" + std::to_string(sink.port()));
  CHECK(sink.dumps().empty());
}

TEST_CASE("opportunistic TLS without STARTTLS offered goes on in plaintext", "[client]") {
  TestLoop loop;
  SmtpSink sink;
  std::string error;
  auto context = make_client_tls_context({}, error);
  REQUIRE(context);
  ClientSettings settings = test_settings();
  settings.tls_context = context.get();
  auto client = connected_client(loop, sink_destination(sink), settings);
  CHECK_FALSE(client->tls_active());
  CHECK(transact(loop, *client, two_recipients()).all_delivered());
}

TEST_CASE("EHLO refused: HELO, and no extensions", "[client]") {
  TestLoop loop;
  SmtpSink sink({"-f", "EHLO"});
  auto client = connected_client(loop, sink_destination(sink));
  CHECK_FALSE(client->capabilities().pipelining);
  CHECK(client->capabilities().keywords.empty());
  auto result = transact(loop, *client, two_recipients());
  CHECK(result.all_delivered());
  auto dumps = wait_for_dumps(sink, 1);
  REQUIRE(dumps.size() == 1);
  CHECK(dumps[0].find("X-Client-Proto: SMTP\n") != std::string::npos);
}

TEST_CASE("the server drops the connection after the message", "[client]") {
  TestLoop loop;
  SmtpSink sink({"-q", "."});
  auto client = connected_client(loop, sink_destination(sink));
  auto result = transact(loop, *client, two_recipients());
  REQUIRE(result.connection_failure);
  CHECK(result.message_sent);  // the peer may have it: a retry may duplicate
  check_all(result, DeliveryStatus::temporary, 0);
  CHECK(result.recipients[0].enhanced_code == "4.4.2");
  CHECK(result.connection_failure->reason.find("end of data") != std::string::npos);
  CHECK(client->is_closed());
}

TEST_CASE("LMTP: one reply per accepted recipient", "[client]") {
  TestLoop loop;
  SmtpSink sink({"-L"}, /*unix_socket=*/true);
  auto client = connected_client(loop, sink_destination(sink, Protocol::lmtp));
  Envelope envelope = two_recipients();
  envelope.recipients.push_back("three@b.test");
  auto result = transact(loop, *client, envelope);
  CHECK(result.all_delivered());
  REQUIRE(result.recipients.size() == 3);
  check_all(result, DeliveryStatus::delivered, 250);
  // The connection is in step: a second message works too.
  CHECK(transact(loop, *client, two_recipients()).all_delivered());
  auto dumps = wait_for_dumps(sink, 2);
  REQUIRE(dumps.size() == 2);
  CHECK(dumps[0].find("X-Client-Proto: LMTP") != std::string::npos);
}

TEST_CASE("SMTP over a unix socket", "[client]") {
  TestLoop loop;
  SmtpSink sink({}, /*unix_socket=*/true);
  auto client = connected_client(loop, sink_destination(sink));
  CHECK(transact(loop, *client, two_recipients()).all_delivered());
}

TEST_CASE("a large message is streamed intact", "[client]") {
  TestLoop loop;
  SmtpSink sink;
  std::string message = "Subject: large\r\n\r\n";
  for (int line = 0; message.size() < 3 * 1024 * 1024; ++line) {
    message += (line % 5 == 0 ? "." : "") + std::string(70, static_cast<char>('a' + line % 26)) +
               std::to_string(line) + "\r\n";
  }
  ClientSettings settings = test_settings();
  settings.data_chunk_size = 16 * 1024;
  auto client = connected_client(loop, sink_destination(sink), settings);
  Envelope envelope;
  envelope.sender = "";  // the null reverse-path
  envelope.recipients = {"one@b.test"};
  auto result = transact(loop, *client, envelope, message);
  CHECK(result.all_delivered());
  auto dumps = wait_for_dumps(sink, 1);
  REQUIRE(dumps.size() == 1);
  CHECK(dumps[0].find("X-Mail-Args: <>\n") != std::string::npos);
  CHECK(dump_holds(dumps[0], message));
}

TEST_CASE("a UTF-8 address to a server without SMTPUTF8 fails permanently", "[client]") {
  TestLoop loop;
  SmtpSink sink;
  auto client = connected_client(loop, sink_destination(sink));
  Envelope envelope;
  envelope.sender = "sender@a.test";
  envelope.recipients = {"j\xc3\xb6rg@b.test", "one@b.test"};
  auto result = transact(loop, *client, envelope);
  check_all(result, DeliveryStatus::permanent, 0);
  CHECK(result.recipients[0].enhanced_code == "5.6.7");
  CHECK_FALSE(result.connection_failure);
  CHECK(client->is_idle());  // nothing was sent
}

TEST_CASE("a raw command and its reply", "[client]") {
  TestLoop loop;
  SmtpSink sink;
  auto client = connected_client(loop, sink_destination(sink));
  std::optional<CommandResult> noop;
  client->send_command("NOOP", [&](CommandResult result) { noop = std::move(result); });
  REQUIRE(loop.run_until([&] { return noop.has_value(); }));
  REQUIRE(noop->reply);
  CHECK(noop->reply->code == 250);
  CHECK(client->is_idle());

  std::optional<CommandResult> injected;
  client->send_command("NOOP\r\nQUIT", [&](CommandResult result) { injected = std::move(result); });
  REQUIRE(loop.run_until([&] { return injected.has_value(); }));
  CHECK(injected->failure);
  CHECK(client->is_idle());  // refused before anything was sent
}

TEST_CASE("malformed or over-long replies end the connection", "[client]") {
  TestLoop loop;
  std::string banner;
  std::string expected;
  SECTION("no reply code") {
    banner = "hello there\r\n";
    expected = "no reply code";
  }
  SECTION("the code changes inside a multi-line reply") {
    banner = "220-first\r\n221 second\r\n";
    expected = "code changes";
  }
  SECTION("a line over the limit") {
    banner = "220 " + std::string(3000, 'x') + "\r\n";
    expected = "over 2048 octets";
  }
  SECTION("an endless line") {
    banner = "220 " + std::string(3000, 'x');
    expected = "over 2048 octets";
  }
  ScriptedGreeter greeter(loop.base(), banner);
  auto client = SmtpClient::create(
      loop.base(), Destination::tcp(Protocol::smtp, "127.0.0.1", greeter.port()), test_settings());
  auto failure = connect(loop, *client);
  REQUIRE(failure);
  INFO(failure->reason);
  CHECK(failure->reason.find(expected) != std::string::npos);
  CHECK(failure->enhanced_code == "4.5.0");
}

TEST_CASE("a refused greeting is a temporary failure", "[client]") {
  TestLoop loop;
  ScriptedGreeter greeter(loop.base(), "554 5.7.1 go away\r\n");
  auto client = SmtpClient::create(
      loop.base(), Destination::tcp(Protocol::smtp, "127.0.0.1", greeter.port()), test_settings());
  auto failure = connect(loop, *client);
  REQUIRE(failure);
  CHECK(failure->reply_code == 554);
  CHECK(failure->enhanced_code == "4.7.1");
  CHECK(failure->reason.find("go away") != std::string::npos);
}

TEST_CASE("extra ESMTP parameters go on MAIL and on each RCPT", "[client]") {
  TestLoop loop;
  SmtpSink sink;
  auto client = connected_client(loop, sink_destination(sink));
  Envelope envelope = two_recipients();
  envelope.mail_parameters = "RET=HDRS";
  envelope.recipient_parameters = {"NOTIFY=NEVER", ""};
  CHECK(transact(loop, *client, envelope).all_delivered());
  auto dumps = wait_for_dumps(sink, 1);
  REQUIRE(dumps.size() == 1);
  CHECK(dumps[0].find("X-Mail-Args: <sender@a.test> RET=HDRS\n") != std::string::npos);
  CHECK(dumps[0].find("X-Rcpt-Args: <one@b.test> NOTIFY=NEVER\nX-Rcpt-Args: <two@b.test>\n") !=
        std::string::npos);
}

TEST_CASE("an envelope that could smuggle a command is refused unsent", "[client]") {
  TestLoop loop;
  SmtpSink sink;
  auto client = connected_client(loop, sink_destination(sink));
  Envelope envelope = two_recipients();
  SECTION("in an address") { envelope.recipients[1] = "two@b.test>\r\nRCPT TO:<three@b.test"; }
  SECTION("in a parameter") { envelope.mail_parameters = "SIZE=1\r\nRSET"; }
  auto result = transact(loop, *client, envelope);
  check_all(result, DeliveryStatus::permanent, 0);
  CHECK(result.recipients[0].enhanced_code == "5.5.4");
  CHECK_FALSE(result.connection_failure);
  CHECK(client->is_idle());
  CHECK(client->transactions_completed() == 0);
}

TEST_CASE("DSN parameters go only to a server that offers DSN", "[client]") {
  TestLoop loop;
  for (const bool offered : {true, false}) {
    INFO("DSN offered: " << offered);
    // smtp-sink -N: "Do not announce support for DSN".
    SmtpSink sink(offered ? std::vector<std::string>{} : std::vector<std::string>{"-N"});
    auto client = connected_client(loop, sink_destination(sink));
    CHECK(client->capabilities().dsn == offered);
    Envelope envelope = two_recipients();
    envelope.dsn_mail_parameters = "RET=HDRS ENVID=x+2By";
    envelope.dsn_recipient_parameters = {"NOTIFY=SUCCESS ORCPT=rfc822;one@b.test", ""};
    auto result = transact(loop, *client, envelope);
    CHECK(result.all_delivered());
    CHECK(result.dsn_offered == offered);
    auto dumps = wait_for_dumps(sink, 1);
    REQUIRE(dumps.size() == 1);
    if (offered) {
      CHECK(dumps[0].find("X-Mail-Args: <sender@a.test> RET=HDRS ENVID=x+2By\n") !=
            std::string::npos);
      CHECK(dumps[0].find("X-Rcpt-Args: <one@b.test> NOTIFY=SUCCESS ORCPT=rfc822;one@b.test\n"
                          "X-Rcpt-Args: <two@b.test>\n") != std::string::npos);
    } else {
      CHECK(dumps[0].find("X-Mail-Args: <sender@a.test>\n") != std::string::npos);
      CHECK(dumps[0].find("X-Rcpt-Args: <one@b.test>\nX-Rcpt-Args: <two@b.test>\n") !=
            std::string::npos);
    }
    client->close();
    CHECK(loop.run_until([&] { return client->is_closed(); }));
  }
}
