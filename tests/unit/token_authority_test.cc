// Unit tests for minting, verifying and revoking tokens
// (tokens/token_authority.h), with the in-memory FakeTokenStore, and for the
// two primitives under them: the HMAC (tokens/mac.h) and the pair hash of the
// verification path (tokens/pair_hash_fast.h).
//
// The fixed vectors were computed independently with Python 3:
//   hash   = base64(hashlib.sha3_256(b"bob@b.test:alice@a.test").digest()), '=' stripped
//   signed = "1-created:1795000000-validity:604800-hash:" + hash + "-keyid:t1"
//   secret = base64(hmac.new(bytes(range(32)), signed, hashlib.sha256).digest()), '=' stripped
// and the same for the permanent token with validity 31536000, keyid p1 and
// the key bytes(range(32, 64)).
#include "tokens/token_authority.h"

#include <catch2/catch.hpp>
#include <filesystem>
#include <string>
#include <thread>
#include <vector>

#include "tests/support/fake_token_store.h"
#include "tests/support/temporary_directory.h"
#include "tokens/mac.h"
#include "tokens/pair_hash.h"
#include "tokens/pair_hash_fast.h"
#include "tokens/token_format.h"

using namespace stokend;
using namespace stokend::tokens;
using stokend::testing::TemporaryDirectory;
using stokend::testing::write_whole_file;
namespace fs = std::filesystem;

namespace {

constexpr std::int64_t now = 1795000000;
constexpr std::int64_t hour = 3600;
constexpr std::int64_t day = 86400;

const std::string temporary_vector =
    "1-created:1795000000-validity:604800-hash:9ukUrVN2u4vljV8L+m7A6GwfqUeE63mINJ/aHoj3Rj8"
    "-keyid:t1-secret:8/0FfW6YvqI0Sf9DsSARK5mlaeur9VbXl2rCncjDBIg";
const std::string permanent_vector =
    "1-created:1795000000-validity:31536000-hash:9ukUrVN2u4vljV8L+m7A6GwfqUeE63mINJ/aHoj3Rj8"
    "-keyid:p1-secret:Rs8E3KPQfbxf2/oumhRbTASdQHwCRvyEa+BCUuknGeg";

const std::string bob = "bob@b.test";
const std::string alice = "alice@a.test";

// A secrets file with fixed keys: bytes(range(32)) as t1, bytes(range(32, 64)) as p1.
fs::path write_fixed_secrets(const TemporaryDirectory& directory) {
  const fs::path path = directory.path() / "token-secrets";
  write_whole_file(path,
                   "temp t1 1000 AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8\n"
                   "perm p1 1000 ICEiIyQlJicoKSorLC0uLzAxMjM0NTY3ODk6Ozw9Pj8\n");
  fs::permissions(path, fs::perms::owner_read | fs::perms::owner_write);
  return path;
}

// Rings, a fake store and an authority whose clock the test sets.
struct Fixture {
  TemporaryDirectory directory;
  fs::path secrets_path = write_fixed_secrets(directory);
  SecretRings rings = SecretRings::load(secrets_path.string());
  FakeTokenStore store;
  std::int64_t clock = now;
  TokenAuthority authority{rings, store, TokenPolicy{}, [this] { return clock; }};
};

}  // namespace

TEST_CASE("a token minted with a fixed key and clock is the exact expected text",
          "[tokens][token_authority]") {
  Fixture fixture;
  CHECK(fixture.authority.mint_temporary(bob, alice) == temporary_vector);
  // Addresses are normalised: a client's capitals change nothing.
  CHECK(fixture.authority.mint_temporary("Bob@B.Test", "ALICE@a.test") == temporary_vector);
  CHECK(fixture.authority.renew_permanent(bob, alice) == permanent_vector);
}

TEST_CASE("a fresh token verifies for its pair", "[tokens][token_authority]") {
  Fixture fixture;
  const TokenCheck check = fixture.authority.verify(temporary_vector, bob, alice);
  INFO(check.reason);
  CHECK(check.valid());
  CHECK(check.verdict == TokenVerdict::valid);
  CHECK(check.kind == TokenKind::temporary);
  CHECK(check.created == now);
  CHECK(check.expires == now + 7 * day);
  CHECK(check.hash == "9ukUrVN2u4vljV8L+m7A6GwfqUeE63mINJ/aHoj3Rj8");
  CHECK(check.key_id == "t1");
  CHECK(check.reason == "valid");
  CHECK_FALSE(check.renew_due);
  CHECK(fixture.authority.verify(temporary_vector, "BOB@b.test", "Alice@A.Test").valid());

  const TokenCheck unbound = fixture.authority.verify_unbound(temporary_vector);
  CHECK(unbound.valid());
  CHECK(TokenAuthority::pair_matches(unbound, bob, alice));
  CHECK_FALSE(TokenAuthority::pair_matches(unbound, alice, bob));
}

TEST_CASE("changing any single character of a token makes it forged or malformed",
          "[tokens][token_authority]") {
  Fixture fixture;
  fixture.authority.renew_permanent(bob, alice);  // so the permanent one is in the store
  for (const std::string& token : {temporary_vector, permanent_vector}) {
    for (std::size_t position = 0; position < token.size(); ++position) {
      for (const char replacement : {'A', 'z', '0', '-', ':', '/'}) {
        if (token[position] == replacement) continue;
        std::string tampered = token;
        tampered[position] = replacement;
        const TokenCheck check = fixture.authority.verify(tampered, bob, alice);
        INFO(tampered << ": " << verdict_name(check.verdict) << ", " << check.reason);
        CHECK((check.verdict == TokenVerdict::forged || check.verdict == TokenVerdict::malformed));
      }
    }
    // Cut short or lengthened.
    CHECK_FALSE(fixture.authority.verify(token.substr(0, token.size() - 1), bob, alice).valid());
    CHECK_FALSE(fixture.authority.verify(token + "A", bob, alice).valid());
  }
}

TEST_CASE("forged tokens say why", "[tokens][token_authority]") {
  Fixture fixture;
  TokenFields fields = parse_named_token(temporary_vector).token->fields;

  fields.options = {{"keyid", "t9"}};
  TokenCheck check = fixture.authority.verify(emit_token(fields), bob, alice);
  CHECK(check.verdict == TokenVerdict::forged);
  CHECK(check.reason == "unknown keyid 't9'");
  CHECK(check.key_id == "t9");
  CHECK_FALSE(check.kind);

  // Another server's token (Dovecot's has no keyid) cannot be verified here.
  fields.options.clear();
  check = fixture.authority.verify(emit_token(fields), bob, alice);
  CHECK(check.verdict == TokenVerdict::forged);
  CHECK(check.reason == "no keyid");

  fields.options = {{"keyid", "t1"}};
  fields.secret = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8";  // a MAC, but not this one
  check = fixture.authority.verify(emit_token(fields), bob, alice);
  CHECK(check.verdict == TokenVerdict::forged);
  CHECK(check.reason == "MAC does not match");

  fields.secret = "short";
  check = fixture.authority.verify(emit_token(fields), bob, alice);
  CHECK(check.verdict == TokenVerdict::forged);
  CHECK(check.reason == "secret is not a MAC (32 octets in base64)");

  // A temporary token relabelled as permanent: its MAC was made with t1,
  // not with the permanent ring's p1.
  fields = parse_named_token(temporary_vector).token->fields;
  fields.options = {{"keyid", "p1"}};
  check = fixture.authority.verify(emit_token(fields), bob, alice);
  CHECK(check.verdict == TokenVerdict::forged);
  CHECK(check.reason == "MAC does not match");
}

TEST_CASE("malformed tokens carry the parser's error", "[tokens][token_authority]") {
  Fixture fixture;
  const TokenCheck check = fixture.authority.verify("garbage", bob, alice);
  CHECK(check.verdict == TokenVerdict::malformed);
  CHECK(check.reason == "unsupported version 'garbage' (expected '1')");
  CHECK(fixture.authority.verify_unbound("").reason == "empty token");
}

TEST_CASE("a token created up to the clock skew ahead is valid, beyond it not yet",
          "[tokens][token_authority]") {
  Fixture fixture;
  fixture.clock = now + 23 * hour;
  const std::string ahead_23h = fixture.authority.mint_temporary(bob, alice);
  fixture.clock = now + 25 * hour;
  const std::string ahead_25h = fixture.authority.mint_temporary(bob, alice);
  fixture.clock = now + day;
  const std::string ahead_1d = fixture.authority.mint_temporary(bob, alice);

  fixture.clock = now;
  CHECK(fixture.authority.verify(ahead_23h, bob, alice).valid());
  CHECK(fixture.authority.verify(ahead_1d, bob, alice).valid());  // exactly the skew
  const TokenCheck check = fixture.authority.verify(ahead_25h, bob, alice);
  CHECK(check.verdict == TokenVerdict::not_yet_valid);
  CHECK(check.kind == TokenKind::temporary);
  CHECK(check.reason == "created 1 day in the future, more than the allowed clock skew of 1 day");
}

TEST_CASE("a token expires when created + validity is reached", "[tokens][token_authority]") {
  Fixture fixture;
  fixture.clock = now + 7 * day - 1;
  CHECK(fixture.authority.verify(temporary_vector, bob, alice).valid());
  fixture.clock = now + 7 * day;
  TokenCheck check = fixture.authority.verify(temporary_vector, bob, alice);
  CHECK(check.verdict == TokenVerdict::expired);
  CHECK(check.reason == "expired just now");
  fixture.clock = now + 10 * day + 5;
  check = fixture.authority.verify(temporary_vector, bob, alice);
  CHECK(check.verdict == TokenVerdict::expired);
  CHECK(check.reason == "expired 3 days ago");
  CHECK(check.expires == now + 7 * day);
}

TEST_CASE("a token for another pair is refused as wrong pair", "[tokens][token_authority]") {
  Fixture fixture;
  TokenCheck check = fixture.authority.verify(temporary_vector, "mallory@b.test", alice);
  CHECK(check.verdict == TokenVerdict::wrong_pair);
  CHECK(check.reason == "hash does not match sender and recipient");
  CHECK(check.kind == TokenKind::temporary);
  // The direction matters.
  CHECK(fixture.authority.verify(temporary_vector, alice, bob).verdict == TokenVerdict::wrong_pair);
  // An expired token is expired, whatever the pair: the first failure decides.
  fixture.clock = now + 8 * day;
  CHECK(fixture.authority.verify(temporary_vector, alice, bob).verdict == TokenVerdict::expired);
}

TEST_CASE("revoking kills the pair's temporary tokens minted before, not after",
          "[tokens][token_authority]") {
  Fixture fixture;
  const std::string before = fixture.authority.mint_temporary(bob, alice);
  const std::string other_pair = fixture.authority.mint_temporary("carol@c.test", alice);
  fixture.authority.revoke("BOB@b.test", alice);  // normalised like everything else

  TokenCheck check = fixture.authority.verify(before, bob, alice);
  CHECK(check.verdict == TokenVerdict::revoked);
  CHECK(check.reason ==
        "created before the pair's revocation mark (revoked through 2026-11-18T11:06:40Z)");
  CHECK(fixture.authority.verify(other_pair, "carol@c.test", alice).valid());

  // Minted in the same second as the revocation: it takes the next second.
  const std::string same_second = fixture.authority.mint_temporary(bob, alice);
  CHECK(parse_named_token(same_second).token->fields.created == now + 1);
  CHECK(fixture.authority.verify(same_second, bob, alice).valid());

  fixture.clock = now + 60;
  CHECK(fixture.authority.verify(fixture.authority.mint_temporary(bob, alice), bob, alice).valid());
  CHECK(fixture.authority.verify(before, bob, alice).verdict == TokenVerdict::revoked);
}

TEST_CASE("a deleted permanent token is unknown", "[tokens][token_authority]") {
  Fixture fixture;
  const std::string permanent = fixture.authority.permanent_for(bob, alice);
  TokenCheck check = fixture.authority.verify(permanent, bob, alice);
  INFO(check.reason);
  CHECK(check.valid());
  CHECK(check.kind == TokenKind::permanent);
  CHECK(check.expires == now + 365 * day);

  fixture.authority.revoke(bob, alice);
  check = fixture.authority.verify(permanent, bob, alice);
  CHECK(check.verdict == TokenVerdict::unknown_permanent);
  CHECK(check.reason == "not in the token store");

  // A permanent token never stored (e.g. minted by a store that lost it).
  CHECK(fixture.authority.verify(permanent_vector, bob, alice).verdict ==
        TokenVerdict::unknown_permanent);
}

TEST_CASE("permanent_for reuses the pair's token, renew_permanent always mints",
          "[tokens][token_authority]") {
  Fixture fixture;
  const std::string first = fixture.authority.permanent_for(bob, alice);
  CHECK(first == permanent_vector);
  fixture.clock = now + 10;
  CHECK(fixture.authority.permanent_for("Bob@B.test", alice) == first);
  REQUIRE(fixture.store.list_issued(alice).size() == 1);
  const IssuedToken stored = fixture.store.list_issued(alice)[0];
  CHECK(stored.token == first);
  CHECK(stored.local_address == alice);
  CHECK(stored.remote_address == bob);
  CHECK(stored.pair_hash == "9ukUrVN2u4vljV8L+m7A6GwfqUeE63mINJ/aHoj3Rj8");
  CHECK(stored.created == now);
  CHECK(stored.expires == now + 365 * day);

  const std::string renewed = fixture.authority.renew_permanent(bob, alice);
  CHECK(renewed != first);
  CHECK(fixture.store.list_issued(alice).size() == 2);
  // The older one stays valid until it expires; permanent_for now gives the newer.
  CHECK(fixture.authority.verify(first, bob, alice).valid());
  CHECK(fixture.authority.verify(renewed, bob, alice).valid());
  CHECK(fixture.authority.permanent_for(bob, alice) == renewed);

  // Once every one has expired, a new one.
  fixture.clock = now + 366 * day;
  const std::string later = fixture.authority.permanent_for(bob, alice);
  CHECK(later != first);
  CHECK(later != renewed);
  CHECK(fixture.authority.verify(later, bob, alice).valid());
}

TEST_CASE("permanent_for replaces a token inside its renewal window, once",
          "[tokens][token_authority]") {
  Fixture fixture;
  const std::string first = fixture.authority.permanent_for(bob, alice);
  fixture.clock = now + 365 * day - 30 * day;  // exactly renew_before left: still handed out
  CHECK(fixture.authority.permanent_for(bob, alice) == first);
  fixture.clock += 1;
  const std::string renewed = fixture.authority.permanent_for(bob, alice);
  CHECK(renewed != first);
  CHECK(parse_named_token(renewed).token->fields.created == fixture.clock);
  // Every later exchange gets the renewed one; the first stays valid until it expires.
  fixture.clock += 60;
  CHECK(fixture.authority.permanent_for(bob, alice) == renewed);
  CHECK(fixture.store.list_issued(alice).size() == 2);
  CHECK(fixture.authority.verify(first, bob, alice).valid());
}

TEST_CASE("a permanent token near its expiry is due for renewal", "[tokens][token_authority]") {
  Fixture fixture;
  const std::string permanent = fixture.authority.renew_permanent(bob, alice);
  fixture.clock = now + 365 * day - 30 * day;  // exactly renew_before left
  CHECK_FALSE(fixture.authority.verify(permanent, bob, alice).renew_due);
  fixture.clock += 1;
  const TokenCheck check = fixture.authority.verify(permanent, bob, alice);
  CHECK(check.valid());
  CHECK(check.renew_due);
  CHECK(check.reason == "valid, due for renewal");
  // Temporary tokens are never renewed.
  CHECK_FALSE(
      fixture.authority.verify(fixture.authority.mint_temporary(bob, alice), bob, alice).renew_due);
}

TEST_CASE("tokens of a rotated-out secret verify until it is dropped, new ones use the new secret",
          "[tokens][token_authority]") {
  Fixture fixture;
  const std::string old_token = fixture.authority.mint_temporary(bob, alice);
  SecretRings::rotate(fixture.secrets_path.string(), TokenKind::temporary, now + 1,
                      std::chrono::hours(24 * 8), std::chrono::hours(24 * 366));
  const SecretRings rotated = SecretRings::load(fixture.secrets_path.string());
  TokenAuthority authority(rotated, fixture.store, TokenPolicy{}, [&] { return fixture.clock; });

  CHECK(authority.verify(old_token, bob, alice).valid());
  const std::string new_token = authority.mint_temporary(bob, alice);
  CHECK(*parse_named_token(new_token).token->fields.option("keyid") == "t2");
  CHECK(authority.verify(new_token, bob, alice).valid());

  // After the retention, t1 is gone: its tokens (long expired anyway) are forged.
  SecretRings::rotate(fixture.secrets_path.string(), TokenKind::temporary, now + 30 * day,
                      std::chrono::hours(24 * 8), std::chrono::hours(24 * 366));
  const SecretRings pruned = SecretRings::load(fixture.secrets_path.string());
  TokenAuthority later(pruned, fixture.store, TokenPolicy{}, [&] { return fixture.clock; });
  CHECK(later.verify(old_token, bob, alice).reason == "unknown keyid 't1'");
}

TEST_CASE("the authority follows the rings when they reload", "[tokens][token_authority]") {
  Fixture fixture;
  SecretRings rings = SecretRings::load(fixture.secrets_path.string());
  TokenAuthority authority(rings, fixture.store, TokenPolicy{}, [&] { return fixture.clock; });
  CHECK(authority.verify(authority.mint_temporary(bob, alice), bob, alice).valid());
  SecretRings::rotate(fixture.secrets_path.string(), TokenKind::temporary, now + 1,
                      std::chrono::hours(1), std::chrono::hours(1));
  std::this_thread::sleep_for(std::chrono::milliseconds(1100));
  REQUIRE(rings.refresh_if_changed());
  const std::string token = authority.mint_temporary(bob, alice);
  CHECK(*parse_named_token(token).token->fields.option("keyid") == "t2");
  CHECK(authority.verify(token, bob, alice).valid());
}

TEST_CASE(
    "a secret another node rotated in verifies here as soon as the file is here, without "
    "waiting for the once-a-second check",
    "[tokens][token_authority]") {
  // Two nodes with their own copy of one secrets file and one store (the
  // operator distributes the file; README "Several nodes").
  Fixture node1;
  TemporaryDirectory node2_folder;
  const fs::path node2_secrets = node2_folder.path() / "token-secrets";
  fs::copy_file(node1.secrets_path, node2_secrets);
  fs::permissions(node2_secrets, fs::perms::owner_read | fs::perms::owner_write);
  const SecretRings node2_rings = SecretRings::load(node2_secrets.string());
  TokenAuthority node2(node2_rings, node1.store, TokenPolicy{}, [&] { return node1.clock; });

  // Node 1 rotates and starts minting with t2 ...
  SecretRings::rotate(node1.secrets_path.string(), TokenKind::temporary, now + 1,
                      std::chrono::hours(1), std::chrono::hours(1));
  REQUIRE(node1.rings.refresh_if_changed(std::chrono::milliseconds(0)));
  const std::string token = node1.authority.mint_temporary(bob, alice);
  REQUIRE(*parse_named_token(token).token->fields.option("keyid") == "t2");
  // ... and before the new file reaches node 2, node 2 cannot know t2.
  CHECK(node2.verify(token, bob, alice).verdict == TokenVerdict::forged);
  // The file arrives (copied, a rename into place); node 2 loaded its own
  // well under a second ago, so only the look on an unknown keyid finds it.
  const fs::path incoming = node2_folder.path() / "incoming";
  fs::copy_file(node1.secrets_path, incoming);
  fs::permissions(incoming, fs::perms::owner_read | fs::perms::owner_write);
  fs::rename(incoming, node2_secrets);
  std::this_thread::sleep_for(std::chrono::milliseconds(60));  // past the 50 ms between looks
  const TokenCheck check = node2.verify(token, bob, alice);
  INFO(check.reason);
  CHECK(check.valid());
  // An id no file has stays forged.
  std::string unknown_id = token;
  unknown_id.replace(unknown_id.find("-keyid:t2"), 9, "-keyid:t9");
  CHECK(node2.verify(unknown_id, bob, alice).verdict == TokenVerdict::forged);
}

TEST_CASE("a store failure reaches the caller", "[tokens][token_authority]") {
  Fixture fixture;
  fixture.store.fail_next(1);
  CHECK_THROWS_AS(fixture.authority.verify(temporary_vector, bob, alice), TokenStoreError);
  CHECK(fixture.authority.verify(temporary_vector, bob, alice).valid());
  // A forged token is refused before the store is asked.
  fixture.store.fail_next(1);
  CHECK(fixture.authority.verify(temporary_vector + "x", bob, alice).verdict ==
        TokenVerdict::forged);
  CHECK(fixture.store.mark_lookups() == 1);
}

TEST_CASE("verdict names", "[tokens][token_authority]") {
  CHECK(verdict_name(TokenVerdict::valid) == "valid");
  CHECK(verdict_name(TokenVerdict::malformed) == "malformed");
  CHECK(verdict_name(TokenVerdict::forged) == "forged");
  CHECK(verdict_name(TokenVerdict::not_yet_valid) == "not_yet_valid");
  CHECK(verdict_name(TokenVerdict::expired) == "expired");
  CHECK(verdict_name(TokenVerdict::revoked) == "revoked");
  CHECK(verdict_name(TokenVerdict::unknown_permanent) == "unknown_permanent");
  CHECK(verdict_name(TokenVerdict::wrong_pair) == "wrong_pair");
}

TEST_CASE("the system clock is unix seconds", "[tokens][token_authority]") {
  const std::int64_t seconds = TokenAuthority::system_clock();
  CHECK(seconds > 1700000000);
  CHECK(seconds == std::chrono::duration_cast<std::chrono::seconds>(
                       std::chrono::system_clock::now().time_since_epoch())
                       .count());
}

TEST_CASE("HMAC-SHA-256 matches libsodium and a fixed vector", "[tokens][mac]") {
  MacKey key{};
  for (std::size_t i = 0; i < key.size(); ++i) key[i] = static_cast<std::uint8_t>(i);
  // Python: hmac.new(bytes(range(32)), b"abc", hashlib.sha256).hexdigest()
  const MacValue expected = {0xf0, 0x13, 0x37, 0x29, 0xc4, 0x16, 0x3d, 0xed, 0xe8, 0x1e, 0x21,
                             0xcd, 0x47, 0x83, 0x92, 0x56, 0xda, 0x58, 0x17, 0x12, 0x38, 0xc8,
                             0xa0, 0xd8, 0x74, 0x39, 0x7c, 0x73, 0xb1, 0x4e, 0x1e, 0x47};
  const HmacSha256Key hmac(key);
  CHECK(hmac.compute("abc") == expected);
  CHECK(hmac_sha256_reference(key, "abc") == expected);
  CHECK(hmac.verify("abc", expected));
  MacValue flipped = expected;
  flipped[31] ^= 1;
  CHECK_FALSE(hmac.verify("abc", flipped));
  CHECK_FALSE(hmac.verify("abd", expected));

  // Messages across the 64-octet block boundaries, and keys of all sorts.
  for (int seed = 0; seed < 8; ++seed) {
    MacKey other{};
    for (std::size_t i = 0; i < other.size(); ++i) {
      other[i] = static_cast<std::uint8_t>(seed * 37 + static_cast<int>(i) * 11);
    }
    const HmacSha256Key other_hmac(other);
    std::string message;
    for (int length = 0; length <= 300; ++length) {
      CHECK(other_hmac.compute(message) == hmac_sha256_reference(other, message));
      message += static_cast<char>(length * 7 + seed);
    }
  }
}

TEST_CASE("the fast pair hash equals SHA3-256 of the joined, lowercased pair", "[tokens][mac]") {
  const std::string long_local = std::string(300, 'X') + "@" + std::string(300, 'y') + ".Test";
  const std::vector<std::pair<std::string, std::string>> pairs = {
      {bob, alice},
      {"Bob@B.Test", "ALICE@a.TEST"},
      {"", ""},
      {"j\xc3\xb6rg@EXAMPLE.test", "\xc3\x84LICE@a.test"},  // UTF-8 kept, ASCII lowered
      {long_local, "Alice@A.test"},                         // longer than one buffer
      {"a@b", long_local + long_local},
  };
  for (const auto& [remote, local] : pairs) {
    INFO(remote << " " << local);
    CHECK(pair_hash_fast(remote, local) ==
          sha3_256(normalize_address(remote) + ":" + normalize_address(local)));
  }
}
