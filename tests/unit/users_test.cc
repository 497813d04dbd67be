// Unit tests for the users file and password hashing (mta/users.h).
#include "mta/users.h"

#include <sys/stat.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <thread>

#include "tests/support/temporary_directory.h"

using stokend::testing::read_whole_file;
using stokend::testing::TemporaryDirectory;
using stokend::testing::write_whole_file;

namespace fs = std::filesystem;
using namespace stokend;

namespace {

// Hashing is slow by design; tests that only need a well-formed hash share one.
const std::string& sample_hash() {
  static const std::string hash = hash_password("sample password");
  return hash;
}

}  // namespace

TEST_CASE("passwords verify against their hash only") {
  const std::string hash = hash_password("correct horse");
  CHECK(hash.starts_with("$argon2id$"));
  CHECK(verify_password(hash, "correct horse"));
  CHECK_FALSE(verify_password(hash, "correct horsE"));
  CHECK_FALSE(verify_password(hash, ""));
  CHECK_FALSE(verify_password("", "correct horse"));
  CHECK_FALSE(verify_password("not a hash", "correct horse"));
  // The same password hashes differently each time (random salt).
  CHECK(hash_password("correct horse") != hash);
}

TEST_CASE("users are added, found, removed and persisted") {
  TemporaryDirectory directory;
  const fs::path file = directory.path() / "state" / "users";  // folder created on first save

  UserDirectory users(file);
  REQUIRE_FALSE(users.load());  // a missing file is an empty directory
  CHECK(users.all().empty());

  REQUIRE_FALSE(users.add("Alice@Example.TEST", "alice's secret"));
  REQUIRE_FALSE(users.add("bob@example.test", "bob's secret"));
  CHECK(users.add("alice@example.test", "again") == "user alice@example.test already exists");

  const User* alice = users.find("ALICE@example.test");
  REQUIRE(alice != nullptr);
  CHECK(alice->address == "alice@example.test");
  CHECK(alice->coi_filter == CoiFilter::off);
  CHECK(verify_password(alice->password_hash, "alice's secret"));
  CHECK(users.find("carol@example.test") == nullptr);

  REQUIRE_FALSE(users.set_coi_filter("bob@EXAMPLE.test", CoiFilter::active));
  CHECK(users.set_coi_filter("carol@example.test", CoiFilter::seen) ==
        "no such user carol@example.test");

  struct stat status {};
  REQUIRE(::stat(file.c_str(), &status) == 0);
  CHECK((status.st_mode & 0777) == 0600);  // hashes are for stokend's eyes only

  UserDirectory reloaded(file);
  REQUIRE_FALSE(reloaded.load());
  const std::vector<User> all = reloaded.all();
  REQUIRE(all.size() == 2);
  CHECK(all[0].address == "alice@example.test");
  CHECK(all[1].address == "bob@example.test");
  CHECK(all[1].coi_filter == CoiFilter::active);
  CHECK(verify_password(all[1].password_hash, "bob's secret"));

  REQUIRE_FALSE(reloaded.remove("Alice@example.test"));
  CHECK(reloaded.remove("alice@example.test") == "no such user alice@example.test");
  UserDirectory after_removal(file);
  REQUIRE_FALSE(after_removal.load());
  REQUIRE(after_removal.all().size() == 1);
  CHECK(after_removal.find("alice@example.test") == nullptr);
  CHECK(after_removal.find("bob@example.test") != nullptr);
}

TEST_CASE("the file holds one line per user, settings only when not default") {
  TemporaryDirectory directory;
  const fs::path file = directory.path() / "users";
  UserDirectory users(file);
  REQUIRE_FALSE(users.load());
  REQUIRE_FALSE(users.add("alice@example.test", "secret"));
  REQUIRE_FALSE(users.add("bob@example.test", "secret"));
  REQUIRE_FALSE(users.set_coi_filter("bob@example.test", CoiFilter::seen));

  std::istringstream lines(read_whole_file(file));
  std::vector<std::string> entries;
  for (std::string line; std::getline(lines, line);) {
    if (!line.starts_with("#")) entries.push_back(line);
  }
  REQUIRE(entries.size() == 2);
  CHECK(entries[0] == "alice@example.test:" + users.find("alice@example.test")->password_hash);
  CHECK(entries[1] ==
        "bob@example.test:" + users.find("bob@example.test")->password_hash + ":coi_filter=seen");
}

TEST_CASE("a hand-written file loads, comments and blank lines ignored") {
  TemporaryDirectory directory;
  const fs::path file = directory.path() / "users";
  write_whole_file(file, "# users\n\nCarol@Example.test:" + sample_hash() +
                             ":coi_filter=active\r\n"
                             "dave@example.test:\n"
                             "\"odd@local\"@example.test:" +
                             sample_hash() + ":\n");
  UserDirectory users(file);
  REQUIRE_FALSE(users.load());
  REQUIRE(users.all().size() == 3);
  const User* carol = users.find("carol@example.test");
  REQUIRE(carol != nullptr);
  CHECK(carol->coi_filter == CoiFilter::active);
  CHECK(verify_password(carol->password_hash, "sample password"));
  REQUIRE(users.find("dave@example.test") != nullptr);
  CHECK(users.find("dave@example.test")->password_hash.empty());  // no login possible
  CHECK(users.find("\"odd@local\"@example.test") != nullptr);
}

TEST_CASE("a malformed line is reported with its line number and changes nothing") {
  TemporaryDirectory directory;
  const fs::path file = directory.path() / "users";
  write_whole_file(file, "alice@example.test:" + sample_hash() + "\n");
  UserDirectory users(file);
  REQUIRE_FALSE(users.load());

  const auto [contents, problem] = GENERATE(table<std::string, std::string>({
      {"no-colon-here", "expected address:password-hash[:settings]"},
      {"bob:x", "invalid address 'bob': it has no '@'"},
      {"bob@example.test:plaintext",
       "the password hash is not a libsodium crypto_pwhash_str string"},
      {"bob@example.test::colour=blue", "unknown setting 'colour'"},
      {"bob@example.test::coi_filter=loud", "coi_filter must be off, active or seen, got 'loud'"},
      {"bob@example.test::coi_filter", "expected setting=value, got 'coi_filter'"},
      {"alice@EXAMPLE.test:", "duplicate user alice@example.test (also on line 2)"},
  }));
  INFO(contents);
  write_whole_file(file, "# header\nalice@example.test:" + sample_hash() + "\n" + contents + "\n");
  const auto error = users.load();
  REQUIRE(error);
  CHECK(*error == file.string() + ":3: " + problem);
  CHECK(users.last_load_error() == error);
  // The previous contents stay in use.
  REQUIRE(users.all().size() == 1);
  CHECK(users.find("alice@example.test") != nullptr);
}

TEST_CASE("malformed addresses are refused when adding") {
  TemporaryDirectory directory;
  UserDirectory users(directory.path() / "users");
  REQUIRE_FALSE(users.load());
  const auto [address, problem] = GENERATE(table<std::string, std::string>({
      {"", "it is empty"},
      {"alice", "it has no '@'"},
      {"alice@bob@example.test", "it has more than one '@'"},
      {"@example.test", "the part before '@' is empty"},
      {"alice@", "the domain after '@' is empty"},
      {"al ice@example.test", "it contains whitespace"},
      {"alice\t@example.test", "it contains a control character"},
      {"al:ice@example.test", "it contains ':'"},
      {"#alice@example.test", "it starts with '#'"},
      {"\"alice@example.test", "it has an unterminated quote"},
  }));
  INFO(address);
  CHECK(users.add(address, "secret") == "invalid address '" + address + "': " + problem);
  CHECK(users.all().empty());
}

TEST_CASE("an empty password is refused") {
  TemporaryDirectory directory;
  UserDirectory users(directory.path() / "users");
  REQUIRE_FALSE(users.load());
  CHECK(users.add("alice@example.test", "") == "the password is empty");
  CHECK_FALSE(fs::exists(directory.path() / "users"));
}

TEST_CASE("refresh_if_changed picks up an edit made by another process") {
  TemporaryDirectory directory;
  const fs::path file = directory.path() / "users";
  write_whole_file(file, "alice@example.test:" + sample_hash() + "\n");
  UserDirectory daemon_view(file);
  REQUIRE_FALSE(daemon_view.load());

  CHECK_FALSE(daemon_view.refresh_if_changed());  // unchanged

  // Another process (stokenctl) adds a user.
  UserDirectory editor(file);
  REQUIRE_FALSE(editor.load());
  REQUIRE_FALSE(editor.add("bob@example.test", "secret"));

  // Checks are at most once a second.
  CHECK_FALSE(daemon_view.refresh_if_changed());
  CHECK(daemon_view.find("bob@example.test") == nullptr);
  std::this_thread::sleep_for(std::chrono::milliseconds(1100));
  CHECK(daemon_view.refresh_if_changed());
  CHECK(daemon_view.find("bob@example.test") != nullptr);

  // A broken edit keeps the last good contents and says why.
  write_whole_file(file, "garbage\n");
  std::this_thread::sleep_for(std::chrono::milliseconds(1100));
  CHECK_FALSE(daemon_view.refresh_if_changed());
  CHECK(daemon_view.find("bob@example.test") != nullptr);
  REQUIRE(daemon_view.last_load_error());
  CHECK(daemon_view.last_load_error()->starts_with(file.string() + ":1: "));
}

TEST_CASE("editors holding the update lock never lose each other's change") {
  TemporaryDirectory directory;
  const fs::path file = directory.path() / "users";
  constexpr int editors = 6;
  std::vector<std::thread> threads;
  std::vector<std::string> errors(editors);
  for (int i = 0; i < editors; ++i) {
    threads.emplace_back([&, i] {
      stokend::UserDirectory users(file);
      std::string lock_error;
      stokend::UniqueFd lock = users.lock_for_update(lock_error);
      if (!lock) {
        errors[i] = lock_error;
        return;
      }
      if (auto error = users.load()) errors[i] = *error;
      // Widen the window between read and write, where an unlocked editor
      // would overwrite another's addition.
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
      if (auto error = users.add("user" + std::to_string(i) + "@example.test", "pw")) {
        errors[i] = *error;
      }
    });
  }
  for (auto& thread : threads) thread.join();
  for (const auto& error : errors) CHECK(error.empty());
  stokend::UserDirectory result(file);
  REQUIRE_FALSE(result.load());
  CHECK(result.all().size() == editors);
}
