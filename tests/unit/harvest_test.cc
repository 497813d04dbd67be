// Unit tests for harvesting Submission-Token fields into wallets: which
// tokens are kept (pair hash of recipient and envelope sender, unexpired,
// named format) and that a header token never replaces a live permanent one.
#include "tokens/harvest.h"

#include <catch2/catch.hpp>
#include <string>
#include <vector>

#include "message/headers.h"
#include "tests/support/fake_token_store.h"
#include "tokens/pair_hash.h"

using namespace stokend;
using namespace stokend::tokens;
using stokend::message::HeaderField;

namespace {

constexpr std::int64_t now = 1'800'000'000;

// A named-format token of another server for the pair, as its header would
// carry it (the MAC is the issuer's business; harvesting never checks it).
std::string token_for(std::string_view issuer_remote, std::string_view issuer_local,
                      std::int64_t created, std::int64_t validity = 604800) {
  return "1-created:" + std::to_string(created) + "-validity:" + std::to_string(validity) +
         "-hash:" + base64_unpadded(pair_hash(issuer_remote, issuer_local)) +
         "-keyid:t7-secret:" + std::string(43, 'A');
}

}  // namespace

TEST_CASE("a token for (recipient, envelope sender) is harvested", "[harvest]") {
  // bob's server issued it for the pair remote = alice (our user), local = bob.
  const std::string token = token_for("Alice@Example.Test", "bob@remote.example", now - 60);
  std::vector<HeaderField> fields{{"From", "<bob@remote.example>"},
                                  {"Submission-Token", token},
                                  {"submission-token", "<" + token + ">"}};
  auto result = harvest_submission_tokens(fields, "Bob@Remote.Example",
                                          {"alice@example.test", "carol@example.test"}, now);
  CHECK(result.fields == 2);
  REQUIRE(result.accepted.size() == 2);  // both spellings; the wallet keeps one
  CHECK(result.accepted[0].local_address == "alice@example.test");
  CHECK(result.accepted[0].remote_address == "bob@remote.example");
  CHECK(result.accepted[0].token == token);
  CHECK(result.accepted[1].token == token);  // angle brackets removed
  CHECK(result.accepted[0].expires == now - 60 + 604800);
  CHECK(result.accepted[0].source == "header");
  CHECK(result.ignored.empty());
}

TEST_CASE("tokens for another pair, expired or malformed are ignored", "[harvest]") {
  std::vector<HeaderField> fields{
      {"Submission-Token", token_for("alice@example.test", "eve@remote.example", now)},
      {"Submission-Token", token_for("bob@remote.example", "alice@example.test", now)},
      {"Submission-Token", token_for("alice@example.test", "bob@remote.example", now - 700000)},
      {"Submission-Token", "not a token"},
      {"Submission-Token",
       "1-" + std::string(43, 'A') + "-" + std::string(43, 'B') + "-5f000000-93a80"}};
  auto result =
      harvest_submission_tokens(fields, "bob@remote.example", {"alice@example.test"}, now);
  CHECK(result.fields == 5);
  CHECK(result.accepted.empty());
  REQUIRE(result.ignored.size() == 5);
  CHECK(result.ignored[0] == "hash matches no recipient with this sender");  // other sender
  CHECK(result.ignored[1] == "hash matches no recipient with this sender");  // reversed pair
  CHECK(result.ignored[2] == "expired");
}

TEST_CASE("a harvested token never replaces a live permanent token", "[harvest]") {
  FakeTokenStore store;
  WalletToken permanent;
  permanent.local_address = "alice@example.test";
  permanent.remote_address = "bob@remote.example";
  permanent.token = "permanent";
  permanent.created = now - 1000;
  permanent.expires = now + 1000;
  permanent.permanent = true;
  REQUIRE(store.put_wallet(permanent));

  WalletToken harvested = permanent;
  harvested.token = "newer temporary";
  harvested.created = now;
  harvested.expires = now + 604800;
  harvested.permanent = false;
  CHECK(store_harvested(store, {harvested}, now) == 0);
  CHECK(store.find_wallet("alice@example.test", "bob@remote.example")->token == "permanent");

  // Once the permanent token has expired, the header token takes its place.
  CHECK(store_harvested(store, {harvested}, now + 2000) == 1);
  CHECK(store.find_wallet("alice@example.test", "bob@remote.example")->token == "newer temporary");
}
