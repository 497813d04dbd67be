// Unit tests for the Token Server's synchronous delivery: the reply line per
// recipient (2.1.12, 2.1.13, mailstore failures), the permanent token it
// issues for a temporary one, MYSTOKEN into the wallet, and a token store
// failure that must not turn a delivered message into an error.
#include "mta/server/token_delivery.h"

#include <event2/event.h>

#include <catch2/catch.hpp>
#include <chrono>
#include <string>
#include <thread>
#include <vector>

#include "common/event_handles.h"
#include "mta/worker_pool.h"
#include "tests/support/fake_token_store.h"
#include "tests/support/temporary_directory.h"
#include "tokens/secret_rings.h"

namespace {

using stokend::WorkerPool;
using stokend::queue::QueuedMessage;
using stokend::queue::RecipientResult;
using stokend::server::split_reply;
using stokend::server::TokenDelivery;
using stokend::server::TokenRecipient;
using namespace stokend;
using namespace stokend::tokens;

constexpr std::int64_t now = 1'800'000'000;

// Answers every recipient with the results it was given, in order.
class ScriptedMailstores : public stokend::queue::DeliveryAgent {
 public:
  std::vector<RecipientResult> results;
  std::vector<std::string> delivered_to;
  void deliver(const QueuedMessage&, std::span<const std::string> recipients, Done done) override {
    delivered_to.assign(recipients.begin(), recipients.end());
    done(results);
  }
};

struct Fixture {
  stokend::testing::TemporaryDirectory directory;
  stokend::EventBasePtr base{event_base_new()};
  SecretRings rings = SecretRings::load_or_create((directory.path() / "secrets").string(), now);
  FakeTokenStore store;
  TokenAuthority authority{rings, store, TokenPolicy{}, [] { return now; }};
  ScriptedMailstores mailstores;
  WorkerPool workers{base.get(), 1};
  TokenDelivery delivery{mailstores, authority, store, workers};

  std::vector<std::string> run(std::vector<TokenRecipient> recipients) {
    QueuedMessage message;
    message.id = "m1";
    message.envelope.sender = "bob@remote.example";
    for (const auto& recipient : recipients)
      message.envelope.recipients.push_back(recipient.address);
    message.data = std::make_shared<const std::string>("Subject: x\r\n\r\nhi\r\n");
    std::optional<std::vector<std::string>> replies;
    delivery.deliver(message, std::move(recipients),
                     [&](std::vector<std::string> lines) { replies = std::move(lines); });
    // The worker's completion arrives through event_active(): poll the loop
    // until it has run (bounded: 5 s).
    auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(5);
    while (!replies && std::chrono::steady_clock::now() < deadline) {
      event_base_loop(base.get(), EVLOOP_NONBLOCK);
      if (!replies) std::this_thread::sleep_for(std::chrono::milliseconds(1));
    }
    REQUIRE(replies);
    return *replies;
  }
};

TokenRecipient recipient(std::string address, TokenKind kind) {
  TokenRecipient result;
  result.address = std::move(address);
  result.token_kind = kind;
  return result;
}

}  // namespace

TEST_CASE("split_reply separates code, enhanced code and text", "[token_delivery]") {
  auto split = split_reply("451 4.3.0 Mailbox locked");
  CHECK(split.code == "451");
  CHECK(split.enhanced == "4.3.0");
  CHECK(split.text == "Mailbox locked");
  split = split_reply("550 no enhanced code here");
  CHECK(split.code == "550");
  CHECK(split.enhanced.empty());
  CHECK(split.text == "no enhanced code here");
  split = split_reply("connect to /run/lmtp: No such file");
  CHECK(split.code.empty());
  CHECK(split.text == "connect to /run/lmtp: No such file");
}

TEST_CASE("a temporary token earns a permanent one: 2.1.13", "[token_delivery]") {
  Fixture fixture;
  fixture.mailstores.results = {
      {RecipientResult::Outcome::delivered, "250 2.0.0 Saved 17.M1", "17.M1"}};
  auto replies = fixture.run({recipient("alice@example.test", TokenKind::temporary)});
  REQUIRE(replies.size() == 1);
  INFO(replies[0]);
  REQUIRE(replies[0].rfind("250 2.1.13 <alice@example.test> ", 0) == 0);
  // The token in the reply is the pair's stored permanent token, and valid.
  std::string token = replies[0].substr(std::string("250 2.1.13 <alice@example.test> ").size());
  token = token.substr(0, token.find(' '));
  auto check = fixture.authority.verify(token, "bob@remote.example", "alice@example.test");
  CHECK(check.valid());
  CHECK(check.kind == TokenKind::permanent);
  CHECK(replies[0].find(" 17.M1 ") != std::string::npos);
  // A second exchange returns the same permanent token, not a new one each time.
  auto again = fixture.run({recipient("alice@example.test", TokenKind::temporary)});
  CHECK(again[0].find(token) != std::string::npos);
}

TEST_CASE("a permanent token: 2.1.12 with the delivery id", "[token_delivery]") {
  Fixture fixture;
  fixture.mailstores.results = {{RecipientResult::Outcome::delivered, "250 2.0.0 Saved X", "X"}};
  auto replies = fixture.run({recipient("alice@example.test", TokenKind::permanent)});
  CHECK(replies == std::vector<std::string>{"250 2.1.12 <alice@example.test> X Delivered"});
}

TEST_CASE("mailstore failures keep their class and name the recipient", "[token_delivery]") {
  Fixture fixture;
  fixture.mailstores.results = {
      {RecipientResult::Outcome::temporary_failure, "451 4.2.0 Mailbox locked", {}},
      {RecipientResult::Outcome::permanent_failure, "552 5.2.2 Quota exceeded", {}},
      {RecipientResult::Outcome::temporary_failure, "connect to socket: refused", {}}};
  auto replies = fixture.run({recipient("a@example.test", TokenKind::temporary),
                              recipient("b@example.test", TokenKind::permanent),
                              recipient("c@example.test", TokenKind::permanent)});
  CHECK(replies ==
        std::vector<std::string>{"451 4.2.0 <a@example.test> Mailbox locked",
                                 "552 5.2.2 <b@example.test> Quota exceeded",
                                 "451 4.3.0 <c@example.test> connect to socket: refused"});
  // Nothing was issued for a message that was not delivered.
  CHECK(fixture.store.list_issued("").empty());
}

TEST_CASE("MYSTOKEN of a delivered recipient goes into the wallet", "[token_delivery]") {
  Fixture fixture;
  fixture.mailstores.results = {{RecipientResult::Outcome::delivered, "250 ok", "id1"},
                                {RecipientResult::Outcome::temporary_failure, "451 4.3.0 x", {}}};
  TokenRecipient delivered = recipient("alice@example.test", TokenKind::permanent);
  WalletToken offered;
  offered.local_address = "alice@example.test";
  offered.remote_address = "bob@remote.example";
  offered.token = "1-created:1799999000-validity:31536000-hash:h-keyid:r1-secret:s";
  offered.pair_hash = "h";
  offered.created = 1'799'999'000;
  offered.expires = 1'799'999'000 + 31'536'000;
  offered.permanent = true;
  offered.source = "MYSTOKEN";
  delivered.offered = offered;
  TokenRecipient failed = recipient("carol@example.test", TokenKind::permanent);
  offered.local_address = "carol@example.test";
  offered.token = "1-created:1799999000-validity:31536000-hash:g-keyid:r1-secret:t";
  failed.offered = offered;
  fixture.run({delivered, failed});
  auto wallet = fixture.store.find_wallet("alice@example.test", "bob@remote.example");
  REQUIRE(wallet);
  CHECK(wallet->token == delivered.offered->token);
  CHECK(wallet->source == "MYSTOKEN");
  CHECK_FALSE(fixture.store.find_wallet("carol@example.test", "bob@remote.example"));
}

TEST_CASE("a token store failure still reports the delivery", "[token_delivery]") {
  Fixture fixture;
  fixture.mailstores.results = {{RecipientResult::Outcome::delivered, "250 ok", "id9"}};
  fixture.store.fail_next(10);
  auto replies = fixture.run({recipient("alice@example.test", TokenKind::temporary)});
  CHECK(replies == std::vector<std::string>{"250 2.1.12 <alice@example.test> id9 Delivered"});
}

TEST_CASE("a permanent token near its expiry is renewed once per pair", "[token_delivery]") {
  Fixture fixture;
  // Minted 355 days ago: 10 days left, inside the 30-day renewal window.
  TokenAuthority earlier{fixture.rings, fixture.store, TokenPolicy{},
                         [] { return now - 355 * 86400; }};
  std::string old_token = earlier.permanent_for("bob@remote.example", "alice@example.test");
  auto check = fixture.authority.verify(old_token, "bob@remote.example", "alice@example.test");
  REQUIRE(check.valid());
  REQUIRE(check.renew_due);

  fixture.mailstores.results = {{RecipientResult::Outcome::delivered, "250 ok", "id1"}};
  TokenRecipient due = recipient("alice@example.test", TokenKind::permanent);
  due.renew_due = true;
  auto replies = fixture.run({due});
  REQUIRE(replies[0].rfind("250 2.1.13 <alice@example.test> ", 0) == 0);
  CHECK(replies[0].find(old_token) == std::string::npos);
  std::string renewed = replies[0].substr(std::string("250 2.1.13 <alice@example.test> ").size());
  renewed = renewed.substr(0, renewed.find(' '));
  CHECK(fixture.authority.verify(renewed, "bob@remote.example", "alice@example.test").valid());
  // The old token keeps working until it expires; a second renewal hands
  // out the same new token rather than minting another.
  CHECK(fixture.authority.verify(old_token, "bob@remote.example", "alice@example.test").valid());
  auto again = fixture.run({due});
  CHECK(again[0].find(renewed) != std::string::npos);
}

TEST_CASE("a Maildir file name becomes a delivery id without ',S=' info", "[token_delivery]") {
  Fixture fixture;
  fixture.mailstores.results = {
      {RecipientResult::Outcome::delivered, "250 ok", "1795361106.M924131P7472Q1.mx,S=225"}};
  auto replies = fixture.run({recipient("alice@example.test", TokenKind::permanent)});
  CHECK(replies ==
        std::vector<std::string>{"250 2.1.12 <alice@example.test> 1795361106.M924131P7472Q1.mx "
                                 "Delivered"});
}
