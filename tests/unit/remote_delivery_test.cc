// Unit tests for delivery to a remote domain (mta/delivery/remote_delivery.h): which
// recipients the fast lane is tried for and with what tokens, what happens to
// the wallet after its answers, that everything it does not deliver takes the
// ordinary path at once, and Submission-Token distribution per recipient.
// The fast lane and the ordinary path are fakes that record their calls;
// tokens, wallet checks and the worker pool are the real ones.
#include "mta/delivery/remote_delivery.h"

#include <event2/event.h>

#include <catch2/catch.hpp>
#include <chrono>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "common/event_handles.h"
#include "mta/client/remote_client.h"
#include "tests/support/fake_token_store.h"
#include "tests/support/temporary_directory.h"
#include "tokens/secret_rings.h"
#include "tokens/token_format.h"
#include "tokens/wallet_entry.h"

namespace {

using namespace stokend;
using client::FastLaneRecipient;
using client::FastLaneResult;
using queue::RecipientResult;

constexpr std::int64_t now = 1'800'000'000;
const std::string alice = "alice@local.test";  // our user
const std::string bob = "bob@remote.test";
const std::string carol = "carol@remote.test";

// Records each call and answers with the scripted results, or falls back.
class ScriptedFastLane : public client::FastLane {
 public:
  struct Call {
    std::string domain;
    std::string sender;
    std::vector<FastLaneRecipient> recipients;
  };
  std::vector<Call> calls;
  std::vector<FastLaneResult> answers;  // one per recipient of the next call

  void deliver(const std::string& domain, const std::string& sender,
               std::vector<FastLaneRecipient> recipients, std::shared_ptr<const std::string>,
               Done done) override {
    calls.push_back({domain, sender, recipients});
    std::vector<FastLaneResult> results = answers;
    results.resize(recipients.size());
    done(std::move(results));
  }
};

struct OrdinaryCall {
  std::vector<std::string> recipients;
  std::string data;
};

struct Fixture {
  stokend::testing::TemporaryDirectory directory;
  EventBasePtr base{event_base_new()};
  tokens::SecretRings rings =
      tokens::SecretRings::load_or_create((directory.path() / "secrets").string(), now);
  tokens::SecretRings remote_rings =
      tokens::SecretRings::load_or_create((directory.path() / "remote").string(), now);
  tokens::FakeTokenStore store;
  tokens::FakeTokenStore remote_store;
  tokens::TokenAuthority authority{rings, store, tokens::TokenPolicy{}, [] { return now; }};
  // The remote domain's Token Server, which issues the tokens alice holds.
  tokens::TokenAuthority remote{remote_rings, remote_store, tokens::TokenPolicy{},
                                [] { return now; }};
  WorkerPool workers{base.get(), 1};
  ScriptedFastLane fast_lane;
  FastLaneConfig config;
  std::vector<OrdinaryCall> ordinary_calls;

  // A token the remote side gave alice for writing to `to`, in her wallet.
  std::string give_alice_token(const std::string& to, bool permanent = false) {
    std::string token =
        permanent ? remote.permanent_for(alice, to) : remote.mint_temporary(alice, to);
    auto entry = tokens::wallet_entry_for(token, alice, to, now, permanent, "header");
    REQUIRE(entry.entry);
    store.put_wallet(*entry.entry);
    return token;
  }

  std::vector<RecipientResult> run(const std::string& sender, std::vector<std::string> recipients,
                                   bool chat, bool with_fast_lane = true,
                                   bool authenticated = true) {
    RemoteDelivery delivery(config, with_fast_lane ? &fast_lane : nullptr, authority, store,
                            workers);
    queue::QueuedMessage message;
    message.id = "q1";
    message.envelope.sender = sender;
    message.envelope.recipients = recipients;
    message.envelope.authenticated_sender = authenticated;
    message.chat = chat;
    message.data = std::make_shared<const std::string>("Subject: hi\r\n\r\nhello\r\n");
    std::optional<std::vector<RecipientResult>> results;
    delivery.deliver(
        message, "remote.test", recipients,
        [this](std::vector<std::string> to, std::shared_ptr<const std::string> data,
               RemoteDelivery::Results done) {
          ordinary_calls.push_back({to, *data});
          std::vector<RecipientResult> answers;
          for (std::size_t i = 0; i < to.size(); ++i) {
            answers.push_back({RecipientResult::Outcome::delivered, "250 2.0.0 Ok", {}});
          }
          done(std::move(answers));
        },
        [&](std::vector<RecipientResult> delivered) { results = std::move(delivered); });
    auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(5);
    while (!results && std::chrono::steady_clock::now() < deadline) {
      event_base_loop(base.get(), EVLOOP_NONBLOCK);
      if (!results) std::this_thread::sleep_for(std::chrono::milliseconds(1));
    }
    REQUIRE(results);
    // Wallet writes run on the worker after the results: let them finish.
    for (int i = 0; i < 20; ++i) {
      event_base_loop(base.get(), EVLOOP_NONBLOCK);
      std::this_thread::sleep_for(std::chrono::milliseconds(1));
    }
    return *results;
  }
};

FastLaneResult delivered(std::string enhanced, std::string permanent_token = {}) {
  FastLaneResult result;
  result.outcome = FastLaneResult::Outcome::delivered;
  result.reply = "250 " + enhanced + " <x> " +
                 (permanent_token.empty() ? "" : permanent_token + " ") + "ID7 Delivered";
  result.delivery_id = "ID7";
  result.permanent_token = std::move(permanent_token);
  result.server = "tokens.remote.test[192.0.2.1]:465";
  return result;
}

FastLaneResult fell_back(std::string reply, bool token_refused) {
  FastLaneResult result;
  result.reply = std::move(reply);
  result.token_refused = token_refused;
  return result;
}

}  // namespace

TEST_CASE("the fast lane gets the wallet token and a MYSTOKEN for the way back",
          "[remote_delivery]") {
  Fixture fixture;
  const std::string token = fixture.give_alice_token(bob);
  fixture.fast_lane.answers = {delivered("2.1.12")};
  auto results = fixture.run(alice, {bob, carol}, false);

  REQUIRE(fixture.fast_lane.calls.size() == 1);
  const auto& call = fixture.fast_lane.calls[0];
  CHECK(call.domain == "remote.test");
  CHECK(call.sender == alice);
  REQUIRE(call.recipients.size() == 1);  // carol has no token
  CHECK(call.recipients[0].address == bob);
  CHECK(call.recipients[0].token == token);
  // MYSTOKEN: our permanent token for (remote = bob, local = alice).
  auto check = fixture.authority.verify(call.recipients[0].my_token, bob, alice);
  CHECK(check.valid());
  CHECK(check.kind == tokens::TokenKind::permanent);

  REQUIRE(results.size() == 2);
  CHECK(results[0].outcome == RecipientResult::Outcome::delivered);
  CHECK(results[0].reply.rfind("250 2.1.12 <bob@remote.test> ID7 delivered via the fast lane", 0) ==
        0);
  CHECK(results[0].delivery_id == "ID7");
  // carol went the ordinary way, alone.
  REQUIRE(fixture.ordinary_calls.size() == 1);
  CHECK(fixture.ordinary_calls[0].recipients == std::vector<std::string>{carol});
  CHECK(results[1].reply == "250 2.0.0 Ok");
}

TEST_CASE("a permanent token from 2.1.13 replaces the wallet entry and stays out of the reply",
          "[remote_delivery]") {
  Fixture fixture;
  fixture.give_alice_token(bob);
  const std::string permanent = fixture.remote.permanent_for(alice, bob);
  fixture.fast_lane.answers = {delivered("2.1.13", permanent)};
  auto results = fixture.run(alice, {bob}, true);
  CHECK(results[0].outcome == RecipientResult::Outcome::delivered);
  CHECK(results[0].reply.find(permanent) == std::string::npos);
  auto entry = fixture.store.find_wallet(alice, bob);
  REQUIRE(entry);
  CHECK(entry->token == permanent);
  CHECK(entry->permanent);
  CHECK(entry->source == "2.1.13");
  CHECK(fixture.ordinary_calls.empty());
}

TEST_CASE("a 2.1.13 token for another pair is not kept", "[remote_delivery]") {
  Fixture fixture;
  const std::string held = fixture.give_alice_token(bob);
  fixture.fast_lane.answers = {delivered("2.1.13", fixture.remote.permanent_for(alice, carol))};
  fixture.run(alice, {bob}, false);
  auto entry = fixture.store.find_wallet(alice, bob);
  REQUIRE(entry);
  CHECK(entry->token == held);
}

TEST_CASE("a refused token leaves the wallet and the recipient takes the ordinary path at once",
          "[remote_delivery]") {
  Fixture fixture;
  fixture.give_alice_token(bob);
  fixture.give_alice_token(carol);
  fixture.fast_lane.answers = {fell_back("550 5.7.30 revoked", true),
                               fell_back("451 4.3.0 try later", false)};
  auto results = fixture.run(alice, {bob, carol}, false);
  CHECK_FALSE(fixture.store.find_wallet(alice, bob));
  CHECK(fixture.store.find_wallet(alice, carol));  // a temporary failure says nothing of it
  REQUIRE(fixture.ordinary_calls.size() == 1);
  CHECK(fixture.ordinary_calls[0].recipients == std::vector<std::string>{bob, carol});
  CHECK(results[0].outcome == RecipientResult::Outcome::delivered);
  CHECK(results[1].outcome == RecipientResult::Outcome::delivered);
}

TEST_CASE("expired or foreign wallet entries are not used", "[remote_delivery]") {
  Fixture fixture;
  // A token for alice -> carol stored under bob: the pair hash does not fit.
  std::string token = fixture.remote.mint_temporary(alice, carol);
  auto entry = tokens::wallet_entry_for(token, alice, carol, now, false, "header");
  REQUIRE(entry.entry);
  entry.entry->remote_address = bob;
  fixture.store.put_wallet(*entry.entry);
  fixture.run(alice, {bob}, false);
  CHECK(fixture.fast_lane.calls.empty());
  REQUIRE(fixture.ordinary_calls.size() == 1);
}

TEST_CASE("mail of a non-local sender or a bounce never uses tokens", "[remote_delivery]") {
  Fixture fixture;
  fixture.give_alice_token(bob);
  fixture.run("mallory@elsewhere.test", {bob}, true, true, false);
  fixture.run("", {bob}, true, true, false);
  // alice's address as the sender of mail that came in by MX (forged, or
  // forwarded by an alias to bob): not hers to send with her token.
  fixture.run(alice, {bob}, true, true, false);
  CHECK(fixture.fast_lane.calls.empty());
  REQUIRE(fixture.ordinary_calls.size() == 3);
  for (const auto& call : fixture.ordinary_calls) {
    CHECK(call.data.find("Submission-Token") == std::string::npos);
  }
}

TEST_CASE("chat mail gets one copy per recipient, each with its own Submission-Token",
          "[remote_delivery]") {
  Fixture fixture;
  fixture.run(alice, {bob, carol}, true);
  REQUIRE(fixture.ordinary_calls.size() == 2);
  for (const auto& call : fixture.ordinary_calls) {
    REQUIRE(call.recipients.size() == 1);
    const std::string prefix = "Submission-Token: ";
    REQUIRE(call.data.rfind(prefix, 0) == 0);
    const auto end = call.data.find("\r\n");
    const std::string token = call.data.substr(prefix.size(), end - prefix.size());
    // Our temporary token for (remote = that recipient, local = alice).
    auto check = fixture.authority.verify(token, call.recipients[0], alice);
    CHECK(check.valid());
    CHECK(check.kind == tokens::TokenKind::temporary);
    CHECK(call.data.substr(end + 2) == "Subject: hi\r\n\r\nhello\r\n");
  }
}

TEST_CASE("distribute_tokens decides which mail carries tokens", "[remote_delivery]") {
  Fixture fixture;
  SECTION("chat: ordinary mail goes unchanged, in one transaction") {
    fixture.run(alice, {bob, carol}, false);
    REQUIRE(fixture.ordinary_calls.size() == 1);
    CHECK(fixture.ordinary_calls[0].data.find("Submission-Token") == std::string::npos);
  }
  SECTION("all: ordinary mail gets them too") {
    fixture.config.distribute_tokens = TokenDistribution::all;
    fixture.run(alice, {bob, carol}, false);
    REQUIRE(fixture.ordinary_calls.size() == 2);
    CHECK(fixture.ordinary_calls[1].data.rfind("Submission-Token: ", 0) == 0);
  }
  SECTION("off: not even chat mail") {
    fixture.config.distribute_tokens = TokenDistribution::off;
    fixture.run(alice, {bob, carol}, true);
    REQUIRE(fixture.ordinary_calls.size() == 1);
    CHECK(fixture.ordinary_calls[0].data.find("Submission-Token") == std::string::npos);
  }
}

TEST_CASE("with the fast lane disabled, wallet tokens are not used", "[remote_delivery]") {
  Fixture fixture;
  fixture.give_alice_token(bob);
  auto results = fixture.run(alice, {bob}, false, false);
  CHECK(fixture.fast_lane.calls.empty());
  REQUIRE(fixture.ordinary_calls.size() == 1);
  CHECK(results[0].reply == "250 2.0.0 Ok");
}

TEST_CASE("Token Server replies give the delivery id and the permanent token",
          "[remote_delivery]") {
  using client::parse_token_reply;
  auto plain = parse_token_reply("2.1.12", "<bob@b.test> 1795.M7P1Q1.host Delivered");
  CHECK(plain.delivery_id == "1795.M7P1Q1.host");
  CHECK(plain.permanent_token.empty());
  auto exchanged = parse_token_reply("2.1.13", "<bob@b.test> 1-created:X ID9 Delivered; permanent");
  CHECK(exchanged.permanent_token == "1-created:X");
  CHECK(exchanged.delivery_id == "ID9");
  CHECK(parse_token_reply("2.1.13", "<bob@b.test> onlyone").permanent_token.empty());
  CHECK(parse_token_reply("2.0.0", "<bob@b.test> ID Delivered").delivery_id.empty());
  CHECK(parse_token_reply("2.1.12", "bob@b.test ID Delivered").delivery_id.empty());
}

TEST_CASE("wallet entries are checked for pair and expiry", "[remote_delivery]") {
  Fixture fixture;
  const std::string token = fixture.remote.mint_temporary(alice, bob);
  auto good = tokens::wallet_entry_for(token, alice, bob, now, false, "header");
  REQUIRE(good.entry);
  CHECK(good.entry->expires == now + tokens::TokenPolicy{}.temporary_validity.count());
  CHECK(tokens::wallet_entry_usable(*good.entry, alice, bob, now));
  CHECK(tokens::wallet_entry_usable(*good.entry, "ALICE@local.test", "Bob@Remote.TEST", now));
  CHECK_FALSE(tokens::wallet_entry_usable(*good.entry, alice, carol, now));
  CHECK_FALSE(tokens::wallet_entry_usable(*good.entry, alice, bob, good.entry->expires));
  CHECK(tokens::wallet_entry_for(token, alice, carol, now, false, "x").reason ==
        "its pair hash is not that of the two addresses");
  CHECK(tokens::wallet_entry_for(token, alice, bob, good.entry->expires, false, "x").reason ==
        "expired");
  CHECK(tokens::wallet_entry_for("garbage", alice, bob, now, false, "x").reason ==
        "not a token in the named format");
}
