// Test helpers for the COI contact storage bridge: a token authority with
// fixed secrets and a clock the test sets, an in-memory token store, and
// tokens as another server would issue them.
#pragma once

#include <catch2/catch.hpp>
#include <cstdint>
#include <filesystem>
#include <string>

#include "tests/support/fake_token_store.h"
#include "tests/support/temporary_directory.h"
#include "tokens/pair_hash.h"
#include "tokens/secret_rings.h"
#include "tokens/token_authority.h"
#include "tokens/token_format.h"

namespace stokend::testing {

inline constexpr std::int64_t contacts_now = 1795000000;
inline constexpr std::int64_t contacts_day = 86400;

inline const std::string alice = "alice@a.test";  // our user
inline const std::string bob = "bob@b.test";      // a contact elsewhere

// A token another server issued: the named format with that server's keyid
// and a MAC we cannot check.
inline std::string foreign_token(const std::string& hash, std::int64_t created,
                                 std::int64_t validity = 7 * contacts_day,
                                 const std::string& keyid = "x1") {
  return tokens::emit_token(tokens::TokenFields{
      created, validity, hash, {{"keyid", keyid}}, "c2VjcmV0LW9mLWFub3RoZXItc2VydmVyLTAxMjM0NTY"});
}

// The hash a TokenOut for our user `local`, delivering to `remote`, carries
// (the issuer's pair: remote = our user).
inline std::string out_hash(const std::string& local, const std::string& remote) {
  return tokens::base64_unpadded(tokens::pair_hash(local, remote));
}

struct TokenFixture {
  TemporaryDirectory directory;
  std::filesystem::path secrets_path = write_secrets();
  tokens::SecretRings rings = tokens::SecretRings::load(secrets_path.string());
  tokens::FakeTokenStore store;
  std::int64_t clock = contacts_now;
  tokens::TokenAuthority authority{rings, store, tokens::TokenPolicy{}, [this] { return clock; }};

  std::filesystem::path write_secrets() {
    const std::filesystem::path path = directory.path() / "token-secrets";
    write_whole_file(path,
                     "temp t1 1000 AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8\n"
                     "perm p1 1000 ICEiIyQlJicoKSorLC0uLzAxMjM0NTY3ODk6Ozw9Pj8\n");
    std::filesystem::permissions(
        path, std::filesystem::perms::owner_read | std::filesystem::perms::owner_write);
    return path;
  }
};

}  // namespace stokend::testing
