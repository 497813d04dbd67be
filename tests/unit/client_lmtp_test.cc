// Local delivery into a real, private Dovecot over LMTP (RFC 2033): the
// asynchronous LmtpStore over TCP and over the unix socket, per-recipient
// results, and the stored message bytes.
#include <algorithm>
#include <catch2/catch.hpp>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "mta/client/connection_pool.h"
#include "mta/client/smtp_client.h"
#include "mta/store/lmtp_store.h"
#include "tests/support/client_test_support.h"

using namespace stokend;
using namespace client_test;
using Status = store::DeliveryResult::Status;

namespace {

// One Dovecot for every test here: it takes a second or two to start.
Dovecot& dovecot() {
  static std::unique_ptr<Dovecot> instance = std::make_unique<Dovecot>();
  return *instance;
}

const std::string lmtp_message =
    "From: <sender@a.test>\r\n"
    "To: <alice@x.test>, <bob@x.test>\r\n"
    "Subject: lmtp test\r\n"
    "Message-ID: <lmtp-test@a.test>\r\n"
    "\r\n"
    "Hello,\r\n"
    ".leading dot\r\n"
    "8-bit: gr\xc3\xbc\xc3\x9f"
    "e\r\n"
    "bye\r\n";

client::ClientSettings lmtp_settings() {
  client::ClientSettings settings;
  settings.helo_name = "stokend.x.test";
  settings.timeouts.quit = 2s;
  return settings;
}

Destination dovecot_tcp() {
  auto destination = Destination::tcp(Protocol::lmtp, "127.0.0.1", dovecot().port());
  destination.tls_policy = TlsPolicy::never;
  return destination;
}

Destination dovecot_socket() {
  auto destination = Destination::unix_socket(Protocol::lmtp, dovecot().socket_path().string());
  destination.tls_policy = TlsPolicy::never;
  return destination;
}

std::vector<store::DeliveryResult> deliver(TestLoop& loop, store::LmtpStore& store,
                                           std::vector<store::Recipient> recipients,
                                           const std::string& message = lmtp_message,
                                           std::string sender = "sender@a.test") {
  std::optional<std::vector<store::DeliveryResult>> results;
  store.deliver(recipients, std::make_shared<const std::string>(message), std::move(sender),
                [&](std::vector<store::DeliveryResult> outcome) { results = std::move(outcome); });
  REQUIRE(loop.run_until([&] { return results.has_value(); }));
  return *results;
}

std::set<fs::path> mail_of(const std::string& user) {
  auto files = files_in(dovecot().new_mail(user));
  return {files.begin(), files.end()};
}

// The one file that appeared in the user's new/ since `before`.
std::string new_message(const std::string& user, const std::set<fs::path>& before) {
  std::vector<fs::path> added;
  for (const auto& file : mail_of(user)) {
    if (!before.count(file)) added.push_back(file);
  }
  REQUIRE(added.size() == 1);
  return read_whole_file(added[0]);
}

// Dovecot adds Return-Path and Received at the top and stores LF line
// endings; everything we sent must follow intact.
void check_stored(const std::string& stored, const std::string& message,
                  const std::string& return_path = "<sender@a.test>") {
  std::string expected = with_lf(message);
  INFO(stored);
  CHECK(stored.rfind("Return-Path: " + return_path + "\n", 0) == 0);
  REQUIRE(stored.size() >= expected.size());
  CHECK(stored.compare(stored.size() - expected.size(), expected.size(), expected) == 0);
}

}  // namespace

TEST_CASE("LMTP into Dovecot: two users in one transaction over TCP", "[client]") {
  TestLoop loop;
  client::ConnectionPool pool(loop.base(), lmtp_settings());
  store::LmtpStore store(pool, dovecot_tcp());
  auto alice_before = mail_of("alice");
  auto bob_before = mail_of("bob");

  auto results = deliver(loop, store, {{"alice", "x.test"}, {"bob", "x.test"}});
  REQUIRE(results.size() == 2);
  for (const auto& result : results) {
    INFO(result.detail);
    CHECK(result.status == Status::delivered);
    CHECK_FALSE(result.delivery_id.empty());
  }
  CHECK(results[0].delivery_id != results[1].delivery_id);
  check_stored(new_message("alice", alice_before), lmtp_message);
  check_stored(new_message("bob", bob_before), lmtp_message);
}

TEST_CASE("LMTP into Dovecot over its unix socket, reusing the connection", "[client]") {
  TestLoop loop;
  client::ConnectionPool pool(loop.base(), lmtp_settings());
  store::LmtpStore store(pool, dovecot_socket());
  auto alice_before = mail_of("alice");
  auto bob_before = mail_of("bob");

  auto first = deliver(loop, store, {{"alice", "x.test"}, {"bob", "x.test"}});
  REQUIRE(first.size() == 2);
  CHECK(first[0].status == Status::delivered);
  CHECK(first[1].status == Status::delivered);
  check_stored(new_message("alice", alice_before), lmtp_message);
  check_stored(new_message("bob", bob_before), lmtp_message);

  // A second message with the null sender, over the same pooled connection.
  alice_before = mail_of("alice");
  auto second = deliver(loop, store, {{"alice", "x.test"}}, lmtp_message, "");
  REQUIRE(second.size() == 1);
  CHECK(second[0].status == Status::delivered);
  check_stored(new_message("alice", alice_before), lmtp_message, "<>");
  CHECK(pool.open_connections(store.destination().key()) == 1);
}

TEST_CASE("LMTP into Dovecot: an unknown user fails alone", "[client]") {
  TestLoop loop;
  client::ConnectionPool pool(loop.base(), lmtp_settings());
  store::LmtpStore store(pool, dovecot_tcp());
  auto alice_before = mail_of("alice");

  auto results = deliver(loop, store, {{"nobody", "x.test"}, {"alice", "x.test"}});
  REQUIRE(results.size() == 2);
  CHECK(results[0].status == Status::permanent_failure);
  CHECK(results[0].delivery_id.empty());
  CHECK(results[0].detail.rfind("550 5.1.1 ", 0) == 0);
  CHECK(results[1].status == Status::delivered);
  check_stored(new_message("alice", alice_before), lmtp_message);
}

TEST_CASE("LMTP client against Dovecot: capabilities and per-recipient replies", "[client]") {
  TestLoop loop;
  auto client = client::SmtpClient::create(loop.base(), dovecot_tcp(), lmtp_settings());
  std::optional<std::optional<client::Failure>> connected;
  client->connect([&](std::optional<client::Failure> failure) { connected = std::move(failure); });
  REQUIRE(loop.run_until([&] { return connected.has_value(); }));
  REQUIRE_FALSE(connected->has_value());
  const auto& capabilities = client->capabilities();
  CHECK(capabilities.pipelining);
  CHECK(capabilities.eight_bit_mime);
  CHECK(capabilities.chunking);
  CHECK(capabilities.enhanced_status_codes);

  client::Envelope envelope;
  envelope.sender = "sender@a.test";
  envelope.recipients = {"bob@x.test", "nobody@x.test", "alice@x.test"};
  envelope.eight_bit_body = true;
  std::optional<client::TransactionResult> result;
  client->send_transaction(envelope, std::make_shared<const std::string>(lmtp_message),
                           [&](client::TransactionResult outcome) { result = std::move(outcome); });
  REQUIRE(loop.run_until([&] { return result.has_value(); }));
  REQUIRE(result->recipients.size() == 3);
  CHECK(result->recipients[0].status == client::DeliveryStatus::delivered);
  CHECK(result->recipients[0].text.rfind("<bob@x.test> ", 0) == 0);
  CHECK(result->recipients[1].status == client::DeliveryStatus::permanent);
  CHECK(result->recipients[1].reply_code == 550);
  CHECK(result->recipients[1].enhanced_code == "5.1.1");
  CHECK(result->recipients[2].status == client::DeliveryStatus::delivered);
  CHECK(result->recipients[2].text.rfind("<alice@x.test> ", 0) == 0);
  client->close();
}

TEST_CASE("LMTP store: Dovecot not reachable gives temporary failures", "[client]") {
  TestLoop loop;
  client::ConnectionPool pool(loop.base(), lmtp_settings());
  auto destination = Destination::tcp(Protocol::lmtp, "127.0.0.1", free_loopback_port());
  store::LmtpStore store(pool, destination);
  auto results = deliver(loop, store, {{"alice", "x.test"}, {"bob", "x.test"}});
  REQUIRE(results.size() == 2);
  for (const auto& result : results) {
    CHECK(result.status == Status::temporary_failure);
    CHECK(result.detail.find("Connection refused") != std::string::npos);
  }
}
