// The outbound SMTP client against a real, private Postfix: per-recipient
// results in one pipelined transaction, STARTTLS with and without
// certificate verification, SIZE and SMTPUTF8.
#include <catch2/catch.hpp>
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

const std::string postfix_message =
    "From: <sender@a.test>\r\n"
    "To: <one@b.test>\r\n"
    "Subject: postfix test\r\n"
    "\r\n"
    "hello\r\n"
    ".\r\n"
    "bye\r\n";

// One Postfix for the tests here: it takes a moment to start.
Postfix& postfix() {
  static std::unique_ptr<Postfix> instance = std::make_unique<Postfix>(20000);
  return *instance;
}

struct TlsSetup {
  stokend::SslContextPtr context;
  ClientSettings settings;
};

TlsSetup tls_setup(const std::string& ca_file) {
  TlsSetup setup;
  std::string error;
  setup.context = make_client_tls_context({ca_file, /*use_system_store=*/false}, error);
  INFO(error);
  REQUIRE(setup.context);
  setup.settings.helo_name = "client.a.test";
  setup.settings.timeouts.quit = 2s;
  setup.settings.tls_context = setup.context.get();
  return setup;
}

Destination postfix_destination() {
  return Destination::tcp(Protocol::smtp, "127.0.0.1", postfix().port());
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
                           const std::string& message = postfix_message) {
  std::optional<TransactionResult> result;
  client.send_transaction(std::move(envelope), std::make_shared<const std::string>(message),
                          [&](TransactionResult outcome) { result = std::move(outcome); });
  REQUIRE(loop.run_until([&] { return result.has_value(); }));
  return *result;
}

}  // namespace

TEST_CASE("Postfix: one refused recipient among accepted ones, over opportunistic TLS",
          "[client]") {
  TestLoop loop;
  auto setup = tls_setup("");
  auto client = SmtpClient::create(loop.base(), postfix_destination(), setup.settings);
  auto failure = connect(loop, *client);
  REQUIRE_FALSE(failure);
  CHECK(client->tls_active());  // unverified: RFC 7435 opportunistic security
  CHECK(client->tls_description().rfind("TLSv1.", 0) == 0);
  CHECK(client->capabilities().pipelining);
  CHECK(client->capabilities().size_limit == 20000);
  CHECK_FALSE(client->capabilities().starttls);  // not offered again inside TLS

  Envelope envelope;
  envelope.sender = "sender@a.test";
  envelope.recipients = {"one@b.test", "rejected@b.test", "two@b.test"};
  auto result = transact(loop, *client, envelope);
  REQUIRE(result.recipients.size() == 3);
  CHECK(result.recipients[0].status == DeliveryStatus::delivered);
  CHECK(result.recipients[0].reply_code == 250);
  CHECK(result.recipients[1].status == DeliveryStatus::permanent);
  CHECK(result.recipients[1].reply_code == 550);
  CHECK(result.recipients[1].enhanced_code == "5.1.1");
  CHECK(result.recipients[1].text.find("no such user") != std::string::npos);
  CHECK(result.recipients[2].status == DeliveryStatus::delivered);
  CHECK(result.recipients[2].text.find("queued as") != std::string::npos);

  // The same connection carries the next message.
  CHECK(transact(loop, *client, envelope).recipients[2].status == DeliveryStatus::delivered);
}

TEST_CASE("Postfix: STARTTLS verified against a private CA and the server name", "[client]") {
  TestLoop loop;
  auto setup = tls_setup(postfix().certificates().ca_certificate.string());
  Destination destination = postfix_destination();
  destination.tls_policy = TlsPolicy::required;
  destination.verify_certificate = true;

  SECTION("the right name") {
    destination.tls_server_name = "mx.b.test";
    auto client = SmtpClient::create(loop.base(), destination, setup.settings);
    auto failure = connect(loop, *client);
    INFO((failure ? failure->reason : ""));
    REQUIRE_FALSE(failure);
    CHECK(client->tls_active());
    Envelope envelope;
    envelope.sender = "sender@a.test";
    envelope.recipients = {"one@b.test"};
    CHECK(transact(loop, *client, envelope).all_delivered());
  }
  SECTION("a name the certificate does not carry") {
    destination.tls_server_name = "other.b.test";
    auto client = SmtpClient::create(loop.base(), destination, setup.settings);
    auto failure = connect(loop, *client);
    REQUIRE(failure);
    CHECK(failure->tls_failed);
    CHECK(failure->enhanced_code == "4.7.5");
    CHECK(failure->reason.find("certificate verification failed") != std::string::npos);
    CHECK(failure->reason.find("hostname mismatch") != std::string::npos);
  }
}

TEST_CASE("Postfix: a certificate from an unknown CA fails verification", "[client]") {
  TestLoop loop;
  TemporaryDirectory other;
  TestCertificates unrelated(other.path());
  auto setup = tls_setup(unrelated.ca_certificate.string());
  Destination destination = postfix_destination();
  destination.tls_policy = TlsPolicy::required;
  destination.verify_certificate = true;
  destination.tls_server_name = "mx.b.test";
  auto client = SmtpClient::create(loop.base(), destination, setup.settings);
  auto failure = connect(loop, *client);
  REQUIRE(failure);
  CHECK(failure->tls_failed);
  CHECK(failure->reason.find("certificate verification failed") != std::string::npos);
}

TEST_CASE("Postfix: SIZE limit and SMTPUTF8", "[client]") {
  TestLoop loop;
  ClientSettings settings;
  settings.helo_name = "client.a.test";
  settings.timeouts.quit = 2s;
  Destination destination = postfix_destination();
  destination.tls_policy = TlsPolicy::never;
  auto client = SmtpClient::create(loop.base(), destination, settings);
  REQUIRE_FALSE(connect(loop, *client));
  CHECK_FALSE(client->tls_active());
  CHECK(client->capabilities().smtputf8);

  SECTION("a message over the announced SIZE is not sent") {
    Envelope envelope;
    envelope.sender = "sender@a.test";
    envelope.recipients = {"one@b.test"};
    std::string large = postfix_message + std::string(30000, 'x') + "\r\n";
    auto result = transact(loop, *client, envelope, large);
    REQUIRE(result.recipients.size() == 1);
    CHECK(result.recipients[0].status == DeliveryStatus::permanent);
    CHECK(result.recipients[0].enhanced_code == "5.3.4");
    CHECK_FALSE(result.message_sent);
  }
  SECTION("UTF-8 addresses with SMTPUTF8") {
    Envelope envelope;
    envelope.sender = "s\xc3\xa9nder@a.test";
    envelope.recipients = {"j\xc3\xb6rg@b.test"};
    auto result = transact(loop, *client, envelope);
    CHECK(result.all_delivered());
  }
}
