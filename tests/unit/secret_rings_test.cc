// Unit tests for the token secret rings (tokens/secret_rings.h): the file
// format and its errors, creation, the mode check, rotation with its
// retention, and reloading a changed file.
#include "tokens/secret_rings.h"

#include <sys/stat.h>

#include <catch2/catch.hpp>
#include <filesystem>
#include <string>
#include <thread>

#include "tests/support/temporary_directory.h"

using namespace stokend;
using namespace stokend::tokens;
using stokend::testing::read_whole_file;
using stokend::testing::TemporaryDirectory;
using stokend::testing::write_whole_file;
namespace fs = std::filesystem;

namespace {

constexpr std::int64_t now = 1795000000;
constexpr std::int64_t day = 86400;

// bytes(range(32)) and bytes(range(32, 64)) in base64 without padding.
const std::string counting_key = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8";
const std::string upper_key = "ICEiIyQlJicoKSorLC0uLzAxMjM0NTY3ODk6Ozw9Pj8";

unsigned file_mode(const fs::path& path) {
  struct stat status {};
  REQUIRE(::stat(path.c_str(), &status) == 0);
  return status.st_mode & 07777;
}

fs::path write_secrets(const TemporaryDirectory& directory, const std::string& contents,
                       fs::perms mode = fs::perms::owner_read | fs::perms::owner_write) {
  const fs::path path = directory.path() / "token-secrets";
  write_whole_file(path, contents);
  fs::permissions(path, mode);
  return path;
}

std::string load_error(const fs::path& path) {
  try {
    SecretRings::load(path.string());
  } catch (const SecretFileError& error) {
    return error.what();
  }
  FAIL("load() accepted " << path);
  return {};
}

std::vector<std::string> ids(const SecretRings& rings) {
  std::vector<std::string> result;
  for (const Secret& secret : rings.snapshot()->secrets) result.push_back(secret.id);
  return result;
}

}  // namespace

TEST_CASE("kind names are temp and perm", "[tokens][secret_rings]") {
  CHECK(kind_name(TokenKind::temporary) == "temp");
  CHECK(kind_name(TokenKind::permanent) == "perm");
}

TEST_CASE("a secrets file loads with comments, blank lines and CRLF", "[tokens][secret_rings]") {
  TemporaryDirectory directory;
  const fs::path path = write_secrets(directory,
                                      "# a comment\n\n   \n"
                                      "temp t1 100 " +
                                          counting_key +
                                          "\r\n"
                                          "  perm\tp1   200 " +
                                          upper_key +
                                          "=\n"
                                          "temp t2 100 " +
                                          upper_key + "\n");
  const SecretRings rings = SecretRings::load(path.string());
  CHECK(rings.path() == path.string());
  const auto snapshot = rings.snapshot();
  REQUIRE(snapshot->secrets.size() == 3);
  const Secret* t1 = snapshot->find("t1");
  REQUIRE(t1 != nullptr);
  CHECK(t1->kind == TokenKind::temporary);
  CHECK(t1->created == 100);
  for (std::size_t i = 0; i < 32; ++i) CHECK(t1->key[i] == i);
  REQUIRE(snapshot->find("p1") != nullptr);
  CHECK(snapshot->find("p1")->key[0] == 32);  // the padded spelling is read too
  CHECK(snapshot->find("p1")->kind == TokenKind::permanent);
  CHECK(snapshot->find("p9") == nullptr);
  // Same created time: the later line is the active one.
  CHECK(snapshot->active(TokenKind::temporary).id == "t2");
  CHECK(snapshot->active(TokenKind::permanent).id == "p1");
}

TEST_CASE("the newest secret of a ring is the active one", "[tokens][secret_rings]") {
  TemporaryDirectory directory;
  const fs::path path = write_secrets(directory, "temp t2 300 " + counting_key +
                                                     "\n"
                                                     "temp t1 100 " +
                                                     counting_key +
                                                     "\n"
                                                     "perm p1 100 " +
                                                     counting_key + "\n");
  CHECK(SecretRings::load(path.string()).snapshot()->active(TokenKind::temporary).id == "t2");
}

TEST_CASE("a bad secrets file is refused at FILE:LINE", "[tokens][secret_rings]") {
  const std::string good = "temp t1 100 " + counting_key + "\nperm p1 100 " + counting_key + "\n";
  const auto [line, expected] = GENERATE_COPY(table<std::string, std::string>({
      {"temp t3 100", "expected '<ring> <id> <created> <base64 key>', got 3 words"},
      {"temp t3 100 " + counting_key + " extra",
       "expected '<ring> <id> <created> <base64 key>', got 5 words"},
      {"tmp t3 100 " + counting_key, "unknown ring 'tmp' (expected temp or perm)"},
      {"temp T3 100 " + counting_key, "bad id 'T3' (expected 1-32 characters a-z, 0-9)"},
      {"temp t-3 100 " + counting_key, "bad id 't-3' (expected 1-32 characters a-z, 0-9)"},
      {"temp t3 -5 " + counting_key, "bad created time '-5' (expected unix seconds)"},
      {"temp t3 12x " + counting_key, "bad created time '12x' (expected unix seconds)"},
      {"temp t3 100 AAEC", "bad key (expected 32 octets in base64)"},
      {"perm t1 100 " + counting_key, "duplicate id 't1' (first on line 1)"},
  }));
  TemporaryDirectory directory;
  const fs::path path = write_secrets(directory, good + line + "\n");
  CHECK(load_error(path) == path.string() + ":3: " + expected);
}

TEST_CASE("a secrets file needs a secret in each ring", "[tokens][secret_rings]") {
  TemporaryDirectory directory;
  const fs::path path = write_secrets(directory, "temp t1 100 " + counting_key + "\n");
  CHECK(load_error(path) ==
        path.string() + ": the perm ring has no secret (each ring needs at least one)");
}

TEST_CASE("a secrets file others may read is refused", "[tokens][secret_rings]") {
  TemporaryDirectory directory;
  const std::string good = "temp t1 100 " + counting_key + "\nperm p1 100 " + counting_key + "\n";
  const fs::path path = write_secrets(directory, good,
                                      fs::perms::owner_read | fs::perms::owner_write |
                                          fs::perms::group_read | fs::perms::others_read);
  const std::string error = load_error(path);
  CHECK_THAT(error, Catch::StartsWith(path.string() + ": mode 0644 is not allowed"));
  CHECK_THAT(error, Catch::Contains("chmod 600 " + path.string()));

  fs::permissions(path, fs::perms::owner_read | fs::perms::owner_write | fs::perms::group_read);
  CHECK_THAT(load_error(path), Catch::Contains("mode 0640 is not allowed"));

  fs::permissions(path, fs::perms::owner_read);
  CHECK(SecretRings::load(path.string()).snapshot()->secrets.size() == 2);
  fs::permissions(path, fs::perms::owner_read | fs::perms::owner_write);
  CHECK(SecretRings::load(path.string()).snapshot()->secrets.size() == 2);
}

TEST_CASE("a missing secrets file is an error for load()", "[tokens][secret_rings]") {
  TemporaryDirectory directory;
  const fs::path path = directory.path() / "absent";
  CHECK_THAT(load_error(path), Catch::StartsWith(path.string() + ": cannot open"));
}

TEST_CASE("load_or_create creates the folder and a 0600 file with one secret per ring",
          "[tokens][secret_rings]") {
  TemporaryDirectory directory;
  const fs::path path = directory.path() / "new" / "folder" / "token-secrets";
  const SecretRings rings = SecretRings::load_or_create(path.string(), now);
  CHECK(file_mode(path) == 0600);
  const auto snapshot = rings.snapshot();
  REQUIRE(snapshot->secrets.size() == 2);
  const Secret& temporary = snapshot->active(TokenKind::temporary);
  const Secret& permanent = snapshot->active(TokenKind::permanent);
  CHECK(temporary.id == "t1");
  CHECK(permanent.id == "p1");
  CHECK(temporary.created == now);
  CHECK(temporary.key != permanent.key);
  CHECK(temporary.key != std::array<std::uint8_t, 32>{});

  // Loaded again, not created again: the same keys.
  const SecretRings again = SecretRings::load_or_create(path.string(), now + 100);
  CHECK(again.snapshot()->active(TokenKind::temporary).key == temporary.key);
  CHECK(again.snapshot()->active(TokenKind::temporary).created == now);
  // Keys never appear in the clear beyond the file: the file holds them in base64.
  CHECK_THAT(read_whole_file(path), Catch::Contains("temp t1 1795000000 "));
}

TEST_CASE("rotation adds an active secret and keeps the old one", "[tokens][secret_rings]") {
  TemporaryDirectory directory;
  const std::string path = (directory.path() / "token-secrets").string();
  const SecretRings before = SecretRings::load_or_create(path, now);
  const auto old_key = before.snapshot()->find("t1")->key;

  CHECK(SecretRings::rotate(path, TokenKind::temporary, now + day, std::chrono::hours(24 * 8),
                            std::chrono::hours(24 * 366)) == std::vector<std::string>{"t2"});
  const SecretRings after = SecretRings::load(path);
  CHECK(file_mode(path) == 0600);
  CHECK(after.snapshot()->active(TokenKind::temporary).id == "t2");
  CHECK(after.snapshot()->active(TokenKind::temporary).created == now + day);
  CHECK(after.snapshot()->active(TokenKind::permanent).id == "p1");
  REQUIRE(after.snapshot()->find("t1") != nullptr);
  CHECK(after.snapshot()->find("t1")->key == old_key);
  CHECK(after.snapshot()->find("t2")->key != old_key);

  // Both rings, twice in the same second: the later line wins the tie.
  CHECK(SecretRings::rotate(path, std::nullopt, now + day, std::chrono::hours(24 * 8),
                            std::chrono::hours(24 * 366)) == std::vector<std::string>{"t3", "p2"});
  const SecretRings twice = SecretRings::load(path);
  CHECK(twice.snapshot()->active(TokenKind::temporary).id == "t3");
  CHECK(twice.snapshot()->active(TokenKind::permanent).id == "p2");
  CHECK(ids(twice) == std::vector<std::string>{"t1", "p1", "t2", "t3", "p2"});
}

TEST_CASE("rotation with the clock gone back still makes the new secret active",
          "[tokens][secret_rings]") {
  TemporaryDirectory directory;
  const std::string path = (directory.path() / "token-secrets").string();
  SecretRings::load_or_create(path, now);
  SecretRings::rotate(path, TokenKind::permanent, now - 1000, std::chrono::hours(1),
                      std::chrono::hours(1));
  const auto snapshot = SecretRings::load(path).snapshot();
  CHECK(snapshot->active(TokenKind::permanent).id == "p2");
  CHECK(snapshot->active(TokenKind::permanent).created == now);
}

TEST_CASE("rotation drops secrets retired longer than their ring's retention",
          "[tokens][secret_rings]") {
  TemporaryDirectory directory;
  const std::string path = (directory.path() / "token-secrets").string();
  const auto keep_temporary = std::chrono::seconds(8 * day);  // validity 7 d + skew 1 d
  const auto keep_permanent = std::chrono::seconds(366 * day);
  SecretRings::load_or_create(path, now);                                              // t1, p1
  SecretRings::rotate(path, std::nullopt, now + day, keep_temporary, keep_permanent);  // t2, p2

  // t1 retired at now + 1 d. At now + 9 d it has been retired exactly 8 d:
  // kept ("more than" the retention drops it).
  SecretRings::rotate(path, TokenKind::temporary, now + 9 * day, keep_temporary, keep_permanent);
  CHECK(ids(SecretRings::load(path)) == std::vector<std::string>{"t1", "p1", "t2", "p2", "t3"});

  // One second later t1 goes; t2 (retired at now + 9 d) stays; the
  // permanent ring keeps p1 (retired 9 d ago, retention 366 d).
  SecretRings::rotate(path, TokenKind::temporary, now + 9 * day + 1, keep_temporary,
                      keep_permanent);
  CHECK(ids(SecretRings::load(path)) == std::vector<std::string>{"p1", "t2", "p2", "t3", "t4"});

  // Much later: every retired secret of both rings goes, the active ones stay.
  SecretRings::rotate(path, TokenKind::temporary, now + 400 * day, keep_temporary, keep_permanent);
  CHECK(ids(SecretRings::load(path)) == std::vector<std::string>{"p2", "t4", "t5"});
  CHECK(file_mode(path) == 0600);
}

TEST_CASE("rotating a file that is not there fails", "[tokens][secret_rings]") {
  TemporaryDirectory directory;
  const std::string path = (directory.path() / "absent").string();
  CHECK_THROWS_AS(
      SecretRings::rotate(path, std::nullopt, now, std::chrono::hours(1), std::chrono::hours(1)),
      SecretFileError);
}

TEST_CASE("refresh_if_changed picks up a rotated file and ignores a broken one",
          "[tokens][secret_rings]") {
  TemporaryDirectory directory;
  const std::string path = (directory.path() / "token-secrets").string();
  SecretRings rings = SecretRings::load_or_create(path, now);
  const auto first = rings.snapshot();

  CHECK_FALSE(rings.refresh_if_changed());  // unchanged (and checked at most once a second)
  SecretRings::rotate(path, TokenKind::temporary, now + 1, std::chrono::hours(1),
                      std::chrono::hours(1));
  CHECK_FALSE(rings.refresh_if_changed());  // within the second since loading
  std::this_thread::sleep_for(std::chrono::milliseconds(1100));
  CHECK(rings.refresh_if_changed());
  CHECK(rings.snapshot()->active(TokenKind::temporary).id == "t2");
  // A snapshot taken before stays whole for whoever still holds it.
  CHECK(first->active(TokenKind::temporary).id == "t1");
  CHECK(first->secrets.size() == 2);

  // Broken by hand: reported, the loaded secrets stay, and it is not retried
  // until it changes again.
  write_whole_file(path, "nonsense\n");
  std::this_thread::sleep_for(std::chrono::milliseconds(1100));
  CHECK_FALSE(rings.refresh_if_changed());
  CHECK(rings.snapshot()->active(TokenKind::temporary).id == "t2");
  std::this_thread::sleep_for(std::chrono::milliseconds(1100));
  CHECK_FALSE(rings.refresh_if_changed());
}
