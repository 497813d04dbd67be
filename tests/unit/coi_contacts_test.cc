// Unit tests for COI contact storage messages (tokens/coi_contact_message.h):
// parsing, rendering, the round trip and replacing the token fields; and for
// the import of their tokens (tokens/coi_contact_import.h): each reason a
// token is skipped, the merge rules, and what reaches the store.
//
// The COI-From-Hash vectors are the COI client spec's own example
// (john.doe@coi-dev.org, john.doe@example.com), which Python's
// hashlib.sha3_256 reproduces.
#include <algorithm>
#include <catch2/catch.hpp>
#include <sstream>
#include <string>
#include <vector>

#include "tests/support/coi_contacts_fixture.h"
#include "tokens/coi_contact_import.h"
#include "tokens/coi_contact_message.h"
#include "tokens/pair_hash.h"

using namespace stokend;
using namespace stokend::tokens;
using namespace stokend::testing;

namespace {

const std::string john_coi = "74b3c446c189580045a942b90b7461128bc334b3b67e9f63c0c06189248c9bb0";
const std::string john_example = "834d1654133366cef4d81e81a7099f413b1b85b9fc9dd62140491303dec56532";

// The COI client spec's example, as its text rendering shows the body.
const std::string spec_example =
    "From: Alice\r\n"
    "COI-From-Hash: " +
    john_coi +
    "\r\n"
    "COI-From-Hash: " +
    john_example +
    "\r\n"
    "Subject: Contact\r\n"
    "Date: Mon, 4 Dec 2019 17:51:37 +0100\r\n"
    "Message-ID:\r\n"
    "Content-Type: text/html; charset=UTF-8\r\n"
    "Chat-Version: 1.0\r\n"
    "MIME-Version: 1.0\r\n"
    "Chat-Content: contact\r\n"
    "\r\n"
    "John Doe\r\nNickname: Johnny\r\nEmail: john.doe@coi-dev.org\r\n"
    "Email: john.doe@example.com\r\nworking from home...\r\n";

// A contact message as a client writes it, LF line endings, for `user`
// about `contact`, with extra header lines and a body of its own.
std::string client_message(const std::string& user, const std::string& contact,
                           const std::string& extra_fields) {
  return "From: Alice <" + user + ">\n" + "To: " + user + "\n" +
         "Subject: Contact\nChat-Content: contact\nCOI-From-Hash: " + coi_from_hash_hex(contact) +
         "\n" + extra_fields + "Content-Type: text/html\n\n<p class=\"p-name\">Bob Builder</p>\n" +
         "<a class=\"u-email\" href=\"mailto:" + contact + "\">" + contact + "</a>\n";
}

ContactMessage parsed(const std::string& text) {
  ContactParseResult result = parse_contact_message(text);
  INFO(result.error);
  REQUIRE(result.contact);
  return *result.contact;
}

std::string parse_error(const std::string& text) {
  const ContactParseResult result = parse_contact_message(text);
  CHECK_FALSE(result.contact);
  return result.error;
}

// The reasons of the notes about one source, joined, for CHECKs on text.
std::string reasons(const std::vector<ContactImportNote>& notes) {
  std::string text;
  for (const auto& note : notes) text += note.source + ": " + note.what + ": " + note.reason + "\n";
  return text;
}

ContactImportOptions options_at(std::int64_t now) {
  ContactImportOptions options;
  options.now = now;
  return options;
}

}  // namespace

TEST_CASE("COI-From-Hash is the hex SHA3-256 of the normalised address", "[coi_contacts]") {
  CHECK(coi_from_hash_hex("john.doe@coi-dev.org") == john_coi);
  CHECK(coi_from_hash_hex("John.Doe@COI-dev.org") == john_coi);
  CHECK(coi_from_hash_hex("john.doe@example.com") == john_example);
}

TEST_CASE("the COI spec's example contact parses", "[coi_contacts]") {
  const ContactMessage contact = parsed(spec_example);
  CHECK(contact.from_hashes == std::vector<std::string>{john_coi, john_example});
  CHECK(contact.addresses ==
        std::vector<std::string>{"john.doe@coi-dev.org", "john.doe@example.com"});
  CHECK(contact.tokens_in.empty());
  CHECK(contact.tokens_out.empty());
  CHECK_FALSE(contact.user);  // "From: Alice" names no address
  CHECK(contact.problems == std::vector<std::string>{"From 'Alice' holds no address"});
  CHECK_FALSE(contact.blocked);
}

TEST_CASE("contact fields are read whatever their case, folding and line endings",
          "[coi_contacts]") {
  const std::string text =
      "from: Someone <Alice@A.Test>\n"
      "chat-content:  Contact ; foo=bar\n"
      "coi-from-hash: " +
      std::string("74B3C446C189580045A942B90B7461128BC334B3B67E9F63C0C06189248C9BB0") +
      "\n"
      "COI-TOKENIN: <in-one>\n"
      "COI-TokenOut: out-one\n out-two\n"
      "COI-TokenOut: out-one\n"
      "COI-Blocked: yes\n"
      "\n"
      "<a href=\"mailto:JOHN.DOE@coi-dev.org\">x</a> and stranger@elsewhere.test\n";
  const ContactMessage contact = parsed(text);
  CHECK(contact.from_hashes == std::vector<std::string>{john_coi});
  CHECK(contact.tokens_in == std::vector<std::string>{"in-one"});
  CHECK(contact.tokens_out == std::vector<std::string>{"out-one", "out-two"});
  CHECK(contact.user == "alice@a.test");
  // Only an address whose hash is listed counts: the stranger is not the contact.
  CHECK(contact.addresses == std::vector<std::string>{"john.doe@coi-dev.org"});
  CHECK(contact.blocked);
  CHECK(contact.problems.empty());
}

TEST_CASE("To names the user before From", "[coi_contacts]") {
  const ContactMessage contact = parsed(
      "From: <other@a.test>\r\nTo: Alice <alice@a.test>\r\nChat-Content: contact\r\n"
      "COI-From-Hash: " +
      john_coi + "\r\n\r\n");
  CHECK(contact.user == "alice@a.test");
}

TEST_CASE("what is not a contact storage message says why", "[coi_contacts]") {
  CHECK(parse_error("Subject: hi\r\n\r\nbody\r\n") ==
        "no Chat-Content field: not a contact storage message");
  CHECK(parse_error("Chat-Content: profile; categories=friend\r\nCOI-From-Hash: " + john_coi +
                    "\r\n\r\n") == "Chat-Content is 'profile', not 'contact'");
  CHECK(parse_error("Chat-Content: contact\r\n\r\n") ==
        "no valid COI-From-Hash field: the message names no contact");
  CHECK(parse_error("Chat-Content: contact\r\nCOI-From-Hash: 1234\r\n\r\n") ==
        "no valid COI-From-Hash field: the message names no contact");
  CHECK(parse_error("") == "no Chat-Content field: not a contact storage message");
}

TEST_CASE("a bad COI-From-Hash or an empty token field is skipped, not the message",
          "[coi_contacts]") {
  const ContactMessage contact =
      parsed("Chat-Content: contact\r\nCOI-From-Hash: not-a-hash\r\nCOI-From-Hash: " + john_coi +
             "\r\nCOI-TokenIn:\r\n\r\n");
  CHECK(contact.from_hashes == std::vector<std::string>{john_coi});
  CHECK(contact.problems ==
        std::vector<std::string>{"COI-From-Hash 'not-a-hash' is neither 64 hexadecimal digits nor "
                                 "base64 of 32 octets (SHA3-256)",
                                 "empty COI-TokenIn field"});
}

TEST_CASE("Dovecot's COI plugin's contact messages: base64 hash, no Chat-Content",
          "[coi_contacts]") {
  // rfcdraft Appendix E.9: the plugin writes COI-From-Hash as base64 of the
  // SHA3-256 without padding, and no Chat-Content field.
  const std::string base64_hash = base64_unpadded(coi_from_hash("John@Example.org"));
  REQUIRE(base64_hash.size() == 43);
  const std::string hex_hash = coi_from_hash_hex("john@example.org");
  const ContactMessage contact = parsed("Subject: Contact\r\nCOI-From-Hash: " + base64_hash +
                                        "\r\nCOI-TokenOut: out-1\r\nCOI-TokenIn: in-1\r\n\r\n");
  CHECK(contact.from_hashes == std::vector<std::string>{hex_hash});
  CHECK(contact.tokens_out == std::vector<std::string>{"out-1"});
  CHECK(contact.problems.empty());
  // Padded, the same hash.
  CHECK(
      parsed("Chat-Content: contact\r\nCOI-From-Hash: " + base64_hash + "=\r\n\r\n").from_hashes ==
      std::vector<std::string>{hex_hash});
  // Without a token field, a message without Chat-Content is still not one.
  CHECK(parse_error("COI-From-Hash: " + base64_hash + "\r\n\r\n") ==
        "no Chat-Content field: not a contact storage message");
  // Nor with token fields that hold no token (found by fuzz_coi_contact_message:
  // rewriting its token fields would leave no contact message).
  CHECK(parse_error("COI-From-Hash: " + base64_hash + "\r\nCOI-TokenIn:\r\n\r\n") ==
        "no Chat-Content field: not a contact storage message");
  // Base64 of anything but 32 octets is no hash.
  CHECK(parse_error("Chat-Content: contact\r\nCOI-From-Hash: " + base64_hash.substr(0, 40) +
                    "\r\n\r\n") == "no valid COI-From-Hash field: the message names no contact");
}

TEST_CASE("a rendered contact parses back to what it was made from", "[coi_contacts]") {
  const ContactContent content{alice,
                               {bob, "bob@other.test"},
                               {john_coi},
                               {"in-1", "in-2"},
                               {foreign_token(out_hash(alice, bob), contacts_now)}};
  const std::string text = render_contact_message(content, contacts_now, "mx.a.test");

  const ContactMessage contact = parsed(text);
  CHECK(contact.from_hashes == std::vector<std::string>{coi_from_hash_hex(bob),
                                                        coi_from_hash_hex("bob@other.test"),
                                                        john_coi});
  CHECK(contact.tokens_in == content.tokens_in);
  CHECK(contact.tokens_out == content.tokens_out);
  CHECK(contact.user == alice);
  CHECK(contact.addresses == content.addresses);
  CHECK(contact.problems.empty());
  CHECK(is_plain_rendering(text));

  // Mail syntax: CRLF only, no line longer than 998 octets.
  std::istringstream lines(text);
  for (std::string line; std::getline(lines, line);) {
    CHECK(line.size() <= 999);
    CHECK((!line.empty() && line.back() == '\r'));
  }
  CHECK(text.find("\r\n\r\n") != std::string::npos);
  CHECK(text.find("Chat-Content: contact\r\n") != std::string::npos);
  CHECK(text.find("Message-ID: <coi-contact.") != std::string::npos);
  CHECK(text.find("@mx.a.test>\r\n") != std::string::npos);
}

TEST_CASE("the body's h-card escapes what HTML would read as markup", "[coi_contacts]") {
  const std::string text = render_contact_message(
      ContactContent{alice, {"\"<b>\"@b.test"}, {}, {}, {}}, contacts_now, "mx.a.test");
  CHECK(text.find("<b>") == std::string::npos);
  CHECK(text.find("&quot;&lt;b&gt;&quot;@b.test") != std::string::npos);
}

TEST_CASE("replacing the token fields keeps every other octet of a client's message",
          "[coi_contacts]") {
  const std::string original =
      client_message(alice, bob, "COI-TokenOut: stale\nCOI-Blocked: yes\nCOI-TokenIn: old\n");
  const std::string replaced =
      replace_contact_fields(original, {coi_from_hash_hex(bob), john_coi}, {"in-new"}, {"out-new"});

  const ContactMessage contact = parsed(replaced);
  CHECK(contact.tokens_in == std::vector<std::string>{"in-new"});
  CHECK(contact.tokens_out == std::vector<std::string>{"out-new"});
  CHECK(contact.from_hashes == std::vector<std::string>{coi_from_hash_hex(bob), john_coi});
  CHECK(contact.blocked);
  // LF stays LF; the rest is the original without its three kinds of fields.
  CHECK(replaced.find('\r') == std::string::npos);
  CHECK(replaced.ends_with(original.substr(original.find("\n\n"))));
  CHECK(replaced.find("From: Alice <alice@a.test>\nTo: alice@a.test\n") != std::string::npos);
  CHECK(replaced.find("stale") == std::string::npos);
  CHECK_FALSE(is_plain_rendering(replaced));
}

TEST_CASE("a rendering stays plain when its tokens are replaced, not when a client adds a field",
          "[coi_contacts]") {
  const std::string rendered =
      render_contact_message(ContactContent{alice, {bob}, {}, {"in-1"}, {}}, contacts_now, "h");
  CHECK(is_plain_rendering(replace_contact_fields(rendered, {coi_from_hash_hex(bob)}, {}, {})));
  CHECK_FALSE(is_plain_rendering("COI-Blocked: yes\r\n" + rendered));
  std::string renamed = rendered;
  renamed.replace(renamed.find("<p class=\"p-name\">"), 18, "<p class=\"p-name\">Bob ");
  CHECK_FALSE(is_plain_rendering(renamed));
  // An IMAP server storing LF line endings changes nothing.
  std::string lf = rendered;
  lf.erase(std::remove(lf.begin(), lf.end(), '\r'), lf.end());
  CHECK(is_plain_rendering(lf));
}

// --- import ---------------------------------------------------------------

TEST_CASE("a valid TokenOut goes into the user's wallet with source import",
          "[coi_contacts][import]") {
  TokenFixture fixture;
  const std::string token = foreign_token(out_hash(alice, bob), contacts_now - 60);
  const std::string message = client_message(alice, bob, "COI-TokenOut: " + token + "\n");
  const ContactImportPlan plan = plan_contact_import({{"one", message}}, fixture.authority,
                                                     fixture.store, options_at(contacts_now));
  INFO(reasons(plan.skipped));
  CHECK(plan.messages == 1);
  REQUIRE(plan.wallet.size() == 1);
  CHECK(plan.skipped.empty());
  CHECK(fixture.store.list_wallet("").empty());  // planning writes nothing

  const ContactImportResult result = apply_contact_import(plan, fixture.store);
  CHECK(result.wallet_added == 1);
  const auto stored = fixture.store.find_wallet(alice, bob);
  REQUIRE(stored);
  CHECK(stored->token == token);
  CHECK(stored->source == "import");
  CHECK_FALSE(stored->permanent);
  CHECK(stored->created == contacts_now - 60);
  CHECK(stored->expires == contacts_now - 60 + 7 * contacts_day);
  CHECK(stored->pair_hash == out_hash(alice, bob));
  // The report names the pair and the time, never the token.
  REQUIRE(result.imported.size() == 1);
  CHECK(result.imported[0].what ==
        "TokenOut 1 (alice@a.test -> bob@b.test, created "
        "2026-11-18T11:05:40Z)");
  CHECK(result.imported[0].what.find(token) == std::string::npos);
}

TEST_CASE("each invalid TokenOut is skipped with its own reason", "[coi_contacts][import]") {
  TokenFixture fixture;
  const std::string hash = out_hash(alice, bob);
  const auto [token, reason] = GENERATE_REF(table<std::string, std::string>({
      {foreign_token(hash, contacts_now - 8 * contacts_day), "expired 1 day ago"},
      {foreign_token(hash, contacts_now + 2 * contacts_day),
       "created 2 days in the future, more than the allowed clock skew of 1 day"},
      {foreign_token(out_hash(bob, alice), contacts_now),
       "its pair hash belongs to neither alice@a.test and any address of the contact"},
      {foreign_token(out_hash(alice, "carol@c.test"), contacts_now),
       "its pair hash belongs to neither alice@a.test and any address of the contact"},
      {"1-AQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQE-AgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgI"
       "-6afd86c0-93a80",
       "in the positional form, whose pair cannot be checked"},
      {"garbage", "not a token in the named format: "},
  }));
  const ContactImportPlan plan =
      plan_contact_import({{"m", client_message(alice, bob, "COI-TokenOut: " + token + "\n")}},
                          fixture.authority, fixture.store, options_at(contacts_now));
  CHECK(plan.wallet.empty());
  REQUIRE(plan.skipped.size() == 1);
  CHECK_THAT(plan.skipped[0].reason, Catch::StartsWith(reason));
  // A token that parses is never quoted (a malformed one is no credential,
  // and its parse error quotes the field at fault).
  if (token.starts_with("1-created:")) {
    CHECK(plan.skipped[0].reason.find(token) == std::string::npos);
    CHECK(plan.skipped[0].what.find(token) == std::string::npos);
  }
}

TEST_CASE("merge: the newest TokenOut per pair wins, across messages and against the wallet",
          "[coi_contacts][import]") {
  TokenFixture fixture;
  const std::string hash = out_hash(alice, bob);
  const std::string older = foreign_token(hash, contacts_now - 300);
  const std::string newest = foreign_token(hash, contacts_now - 100);
  const std::string middle = foreign_token(hash, contacts_now - 200);
  const std::vector<ContactSource> sources = {
      {"first", client_message(alice, bob, "COI-TokenOut: " + older + "\n")},
      {"second", client_message(alice, bob, "COI-TokenOut: " + newest + "\n")},
      {"third", client_message(alice, bob, "COI-TokenOut: " + middle + "\n")},
  };
  ContactImportPlan plan =
      plan_contact_import(sources, fixture.authority, fixture.store, options_at(contacts_now));
  REQUIRE(plan.wallet.size() == 1);
  CHECK(plan.wallet[0].token.token == newest);
  CHECK(plan.wallet[0].note.source == "second");
  REQUIRE(plan.skipped.size() == 2);
  for (const auto& note : plan.skipped) {
    CHECK_THAT(note.reason, Catch::StartsWith("superseded by a newer TokenOut for the same pair"));
  }
  apply_contact_import(plan, fixture.store);
  CHECK(fixture.store.find_wallet(alice, bob)->token == newest);

  // Imported again: already there.
  plan = plan_contact_import(sources, fixture.authority, fixture.store, options_at(contacts_now));
  CHECK(plan.wallet.empty());
  CHECK(reasons(plan.unchanged).find("already in the wallet") != std::string::npos);

  // A newer token in the wallet is kept.
  const std::string in_wallet = foreign_token(hash, contacts_now - 10);
  fixture.store.put_wallet(WalletToken{alice, bob, in_wallet, hash, contacts_now - 10,
                                       contacts_now + contacts_day, true, "2.1.13"});
  plan = plan_contact_import(sources, fixture.authority, fixture.store, options_at(contacts_now));
  CHECK(plan.wallet.empty());
  CHECK(reasons(plan.skipped).find("the wallet holds a token for this pair created no earlier") !=
        std::string::npos);
  CHECK(fixture.store.find_wallet(alice, bob)->token == in_wallet);
}

TEST_CASE("TokenIn: our own tokens verify, others are skipped with the verdict",
          "[coi_contacts][import]") {
  TokenFixture fixture;
  const std::string temporary = fixture.authority.mint_temporary(bob, alice);
  const std::string permanent = fixture.authority.renew_permanent(bob, alice);
  std::string forged = temporary;
  forged[forged.size() - 2] = forged[forged.size() - 2] == 'A' ? 'B' : 'A';
  fixture.clock = contacts_now - 8 * contacts_day;
  const std::string expired = fixture.authority.mint_temporary(bob, alice);
  fixture.clock = contacts_now;
  const std::string for_carol = fixture.authority.mint_temporary("carol@c.test", alice);

  const std::string message = client_message(
      alice, bob,
      "COI-TokenIn: " + temporary + "\nCOI-TokenIn: " + permanent + "\nCOI-TokenIn: " + forged +
          "\nCOI-TokenIn: " + expired + "\nCOI-TokenIn: " + for_carol + "\n");
  const ContactImportPlan plan = plan_contact_import({{"m", message}}, fixture.authority,
                                                     fixture.store, options_at(contacts_now));
  INFO(reasons(plan.skipped) + reasons(plan.unchanged));
  CHECK(plan.issued.empty());
  CHECK(plan.wallet.empty());
  REQUIRE(plan.unchanged.size() == 2);
  CHECK(plan.unchanged[0].reason == "valid temporary token: stateless, nothing to store");
  CHECK(plan.unchanged[0].what ==
        "TokenIn 1 (bob@b.test -> alice@a.test, created 2026-11-18T11:06:40Z)");
  CHECK(plan.unchanged[1].reason == "valid permanent token, already in the token store");
  REQUIRE(plan.skipped.size() == 3);
  CHECK(plan.skipped[0].reason == "forged: MAC does not match");
  CHECK_THAT(plan.skipped[1].reason, Catch::StartsWith("expired: expired 1 day ago"));
  CHECK(plan.skipped[2].reason ==
        "its pair hash belongs to neither alice@a.test and any address of the contact");
}

TEST_CASE("a permanent TokenIn missing from the store is restored only when asked and not revoked",
          "[coi_contacts][import]") {
  TokenFixture fixture;
  const std::string permanent = fixture.authority.renew_permanent(bob, alice);
  const std::string hash = fixture.store.find_issued(permanent)->pair_hash;
  fixture.store.delete_issued(hash);  // the store lost it
  const std::vector<ContactSource> sources = {
      {"m", client_message(alice, bob, "COI-TokenIn: " + permanent + "\n")}};

  ContactImportOptions options = options_at(contacts_now);
  ContactImportPlan plan = plan_contact_import(sources, fixture.authority, fixture.store, options);
  CHECK(plan.issued.empty());
  REQUIRE(plan.skipped.size() == 1);
  CHECK(plan.skipped[0].reason ==
        "permanent token missing from the token store (revoked, or lost with the store); "
        "restoring it was not asked for");

  options.restore_issued = true;
  plan = plan_contact_import(sources, fixture.authority, fixture.store, options);
  REQUIRE(plan.issued.size() == 1);
  const ContactImportResult result = apply_contact_import(plan, fixture.store);
  CHECK(result.issued_restored == 1);
  const auto restored = fixture.store.find_issued(permanent);
  REQUIRE(restored);
  CHECK(restored->local_address == alice);
  CHECK(restored->remote_address == bob);
  CHECK(restored->created == contacts_now);
  CHECK(restored->expires == contacts_now + 365 * contacts_day);
  CHECK(fixture.authority.verify(permanent, bob, alice).valid());

  // Revoked (REVSTOKEN): the mark covers it, so it stays dead.
  fixture.clock = contacts_now + 10;
  fixture.authority.revoke(bob, alice);
  plan = plan_contact_import(sources, fixture.authority, fixture.store, options);
  CHECK(plan.issued.empty());
  REQUIRE(plan.skipped.size() == 1);
  CHECK(plan.skipped[0].reason ==
        "revoked: created at or before the pair's revocation mark (2026-11-18T11:06:50Z)");
}

TEST_CASE("the user comes from To or From, or the options, and must be local",
          "[coi_contacts][import]") {
  TokenFixture fixture;
  const std::string token = foreign_token(out_hash(alice, bob), contacts_now);
  std::string without_user = client_message(alice, bob, "COI-TokenOut: " + token + "\n");
  without_user.replace(0, without_user.find("Subject:"), "From: Alice\n");

  ContactImportOptions options = options_at(contacts_now);
  ContactImportPlan plan =
      plan_contact_import({{"m", without_user}}, fixture.authority, fixture.store, options);
  CHECK(plan.wallet.empty());
  REQUIRE(plan.skipped.size() == 2);
  CHECK(plan.skipped[0].reason == "From 'Alice' holds no address");
  CHECK(plan.skipped[1].reason ==
        "no user: neither To nor From holds an address (name the user explicitly)");

  options.user = "Alice@A.Test";
  plan = plan_contact_import({{"m", without_user}}, fixture.authority, fixture.store, options);
  REQUIRE(plan.wallet.size() == 1);
  CHECK(plan.wallet[0].token.local_address == alice);

  options.is_local_user = [](std::string_view address) { return address != alice; };
  plan = plan_contact_import({{"m", without_user}}, fixture.authority, fixture.store, options);
  CHECK(plan.wallet.empty());
  CHECK(plan.skipped.back().reason == "alice@a.test is not a local user");
}

TEST_CASE("an encrypted contact matches through the addresses the store knows",
          "[coi_contacts][import]") {
  TokenFixture fixture;
  const std::string hash = out_hash(alice, bob);
  const std::string encrypted =
      "To: <alice@a.test>\r\nChat-Content: contact\r\nCOI-From-Hash: " + coi_from_hash_hex(bob) +
      "\r\nContent-Type: multipart/encrypted\r\nCOI-TokenOut: " +
      foreign_token(hash, contacts_now) + "\r\n\r\n-----BEGIN PGP";
  ContactImportPlan plan = plan_contact_import({{"m", encrypted}}, fixture.authority, fixture.store,
                                               options_at(contacts_now));
  CHECK(plan.wallet.empty());
  REQUIRE(plan.skipped.size() == 1);
  CHECK_THAT(plan.skipped[0].reason, Catch::StartsWith("no address of the contact is known"));

  // Once the server has a token of bob's, his hash names him.
  fixture.store.put_wallet(WalletToken{alice, bob, foreign_token(hash, contacts_now - 1000), hash,
                                       contacts_now - 1000, contacts_now + 1000, false, "header"});
  plan = plan_contact_import({{"m", encrypted}}, fixture.authority, fixture.store,
                             options_at(contacts_now));
  REQUIRE(plan.wallet.size() == 1);
  CHECK(plan.wallet[0].token.remote_address == bob);
}

TEST_CASE("one bad message does not stop the others", "[coi_contacts][import]") {
  TokenFixture fixture;
  const std::string token = foreign_token(out_hash(alice, bob), contacts_now);
  const std::vector<ContactSource> sources = {
      {"a-profile", "Chat-Content: profile\r\n\r\n"},
      {"garbage", std::string("\0\xff\r\n\r\n\r\n", 7)},
      {"good", client_message(alice, bob, "COI-TokenOut: " + token + "\n")},
  };
  const ContactImportPlan plan =
      plan_contact_import(sources, fixture.authority, fixture.store, options_at(contacts_now));
  CHECK(plan.messages == 1);
  CHECK(plan.wallet.size() == 1);
  REQUIRE(plan.skipped.size() == 2);
  CHECK(plan.skipped[0].source == "a-profile");
  CHECK(plan.skipped[0].reason == "Chat-Content is 'profile', not 'contact'");
  CHECK(plan.skipped[1].source == "garbage");
}

TEST_CASE("an export round-trips through the import unchanged", "[coi_contacts][import]") {
  TokenFixture fixture;
  const std::string permanent = fixture.authority.renew_permanent(bob, alice);
  const std::string out = foreign_token(out_hash(alice, bob), contacts_now - 5);
  const std::string text = render_contact_message(
      ContactContent{alice, {bob}, {}, {permanent}, {out}}, contacts_now, "mx.a.test");
  const ContactImportPlan plan = plan_contact_import({{"export", text}}, fixture.authority,
                                                     fixture.store, options_at(contacts_now));
  INFO(reasons(plan.skipped));
  CHECK(plan.skipped.empty());
  CHECK(plan.wallet.size() == 1);
  CHECK(plan.unchanged.size() == 1);  // the permanent TokenIn is in the store
}

TEST_CASE("a store failure while applying surfaces as TokenStoreError", "[coi_contacts][import]") {
  TokenFixture fixture;
  const std::string token = foreign_token(out_hash(alice, bob), contacts_now);
  const ContactImportPlan plan =
      plan_contact_import({{"m", client_message(alice, bob, "COI-TokenOut: " + token + "\n")}},
                          fixture.authority, fixture.store, options_at(contacts_now));
  fixture.store.fail_next(1);
  CHECK_THROWS_AS(apply_contact_import(plan, fixture.store), TokenStoreError);
  CHECK(fixture.store.list_wallet("").empty());
  // Run again: each write is idempotent.
  CHECK(apply_contact_import(plan, fixture.store).wallet_added == 1);
}
