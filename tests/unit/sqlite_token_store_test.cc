// Unit tests for the SQLite token store (tokens/sqlite_token_store.h): every
// TokenStore operation, persistence across reopening, what a second
// connection (stokenctl) sees and makes the first one see, the file's mode
// and journal, schema versions, errors, and use from several threads.
#include "tokens/sqlite_token_store.h"

#include <sqlite3.h>
#include <sys/stat.h>

#include <atomic>
#include <catch2/catch.hpp>
#include <filesystem>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "tests/support/small_file_system.h"
#include "tests/support/temporary_directory.h"
#include "tests/support/token_samples.h"
#include "tokens/secret_rings.h"
#include "tokens/token_authority.h"

using namespace stokend;
using namespace stokend::tokens;
using stokend::testing::TemporaryDirectory;
namespace fs = std::filesystem;
using namespace std::chrono_literals;

using stokend::testing::issued;
using stokend::testing::wallet;

namespace {

constexpr std::int64_t now = 1795000000;

SqliteTokenStore::Options checking_every_call() {
  SqliteTokenStore::Options options;
  options.change_check_interval = 0ms;
  return options;
}

// Runs SQL on a connection of its own, as another process would.
std::string query_one(const fs::path& file, const std::string& sql) {
  sqlite3* raw = nullptr;
  REQUIRE(sqlite3_open(file.c_str(), &raw) == SQLITE_OK);
  const std::unique_ptr<sqlite3, int (*)(sqlite3*)> database(raw, sqlite3_close);
  std::string result;
  char* error = nullptr;
  const int status = sqlite3_exec(
      database.get(), sql.c_str(),
      [](void* out, int, char** values, char**) {
        *static_cast<std::string*>(out) = values[0] != nullptr ? values[0] : "";
        return 0;
      },
      &result, &error);
  INFO((error != nullptr ? error : ""));
  sqlite3_free(error);
  REQUIRE(status == SQLITE_OK);
  return result;
}

}  // namespace

TEST_CASE("a new store is a 0600 file in WAL mode, in a folder it creates",
          "[tokens][sqlite_token_store]") {
  TemporaryDirectory directory;
  const fs::path file = directory.path() / "spool" / "tokens.db";
  SqliteTokenStore store(file);
  CHECK(store.file() == file);
  store.set_revocation_mark("hash", now);
  struct stat status {};
  REQUIRE(::stat(file.c_str(), &status) == 0);
  CHECK((status.st_mode & 0777) == 0600);
  CHECK(query_one(file, "PRAGMA journal_mode") == "wal");
  CHECK(query_one(file, "PRAGMA user_version") == "1");
  const fs::path wal = file.string() + "-wal";
  REQUIRE(fs::exists(wal));
  REQUIRE(::stat(wal.c_str(), &status) == 0);
  CHECK((status.st_mode & 0777) == 0600);
}

TEST_CASE("the store opens and reads on a full file system: -wal and -shm persist",
          "[tokens][sqlite_token_store][full_disk]") {
  stokend::testing::SmallFileSystem disk(1024);
  if (!disk.mounted()) {
    WARN("skipped: " << disk.why_not());
    return;
  }
  const fs::path file = disk.path() / "tokens.db";
  {
    SqliteTokenStore store(file);
    store.add_issued(issued("t-a", "pair-1", now));
  }
  // Closed: the files SQLite needs to open the store again are still there.
  CHECK(fs::exists(file.string() + "-wal"));
  CHECK(fs::exists(file.string() + "-shm"));
  REQUIRE(disk.fill());
  {
    SqliteTokenStore store(file);
    CHECK(store.find_issued("t-a"));
    disk.make_room();
    store.add_issued(issued("t-b", "pair-2", now));
    CHECK(store.find_issued("t-b"));
  }
}

TEST_CASE("issued tokens are stored, found, listed and deleted by pair",
          "[tokens][sqlite_token_store]") {
  TemporaryDirectory directory;
  SqliteTokenStore store(directory.path() / "tokens.db");
  CHECK_FALSE(store.find_issued("t-a"));
  store.add_issued(issued("t-a", "pair-1", now, "Alice@A.Test", "BOB@b.test"));
  store.add_issued(issued("t-b", "pair-1", now + 10));
  store.add_issued(issued("t-c", "pair-2", now + 5, "carol@a.test"));

  const auto found = store.find_issued("t-a");
  REQUIRE(found);
  CHECK(found->token == "t-a");
  CHECK(found->local_address == "alice@a.test");  // stored normalised
  CHECK(found->remote_address == "bob@b.test");
  CHECK(found->pair_hash == "pair-1");
  CHECK(found->created == now);
  CHECK(found->expires == now + 1000);

  CHECK(store.newest_issued("pair-1", now)->token == "t-b");
  // Unexpired only: t-b expires at now + 1010, t-a at now + 1000.
  CHECK_FALSE(store.newest_issued("pair-1", now + 1010));
  CHECK(store.newest_issued("pair-1", now + 1005)->token == "t-b");
  CHECK_FALSE(store.newest_issued("pair-3", now));

  CHECK(store.list_issued("").size() == 3);
  const auto alices = store.list_issued("ALICE@a.test");
  REQUIRE(alices.size() == 2);
  CHECK(alices[0].token == "t-a");
  CHECK(alices[1].token == "t-b");

  CHECK(store.delete_issued("pair-1") == 2);
  CHECK(store.delete_issued("pair-1") == 0);
  CHECK_FALSE(store.find_issued("t-a"));
  CHECK(store.find_issued("t-c"));
}

TEST_CASE("a revocation mark only moves forward", "[tokens][sqlite_token_store]") {
  TemporaryDirectory directory;
  SqliteTokenStore store(directory.path() / "tokens.db");
  CHECK_FALSE(store.revocation_mark("pair"));
  store.set_revocation_mark("pair", now);
  CHECK(store.revocation_mark("pair") == now);
  store.set_revocation_mark("pair", now - 100);
  CHECK(store.revocation_mark("pair") == now);
  store.set_revocation_mark("pair", now + 100);
  CHECK(store.revocation_mark("pair") == now + 100);
  CHECK_FALSE(store.revocation_mark("other"));
}

TEST_CASE("the wallet keeps the newer token of a pair", "[tokens][sqlite_token_store]") {
  TemporaryDirectory directory;
  SqliteTokenStore store(directory.path() / "tokens.db");
  CHECK(store.put_wallet(wallet("first", now)));
  CHECK_FALSE(store.put_wallet(wallet("older", now - 1)));
  CHECK(store.find_wallet("alice@a.test", "bob@b.test")->token == "first");
  CHECK(store.put_wallet(wallet("same-age", now)));  // not older: replaces
  WalletToken newer = wallet("newer", now + 1);
  newer.permanent = true;
  newer.source = "2.1.13";
  newer.local_address = "ALICE@A.test";
  newer.remote_address = "Bob@B.test";
  CHECK(store.put_wallet(newer));

  const auto found = store.find_wallet("Alice@a.test", "BOB@b.test");
  REQUIRE(found);
  CHECK(found->token == "newer");
  CHECK(found->local_address == "alice@a.test");
  CHECK(found->remote_address == "bob@b.test");
  CHECK(found->pair_hash == "hash");
  CHECK(found->created == now + 1);
  CHECK(found->expires == now + 1001);
  CHECK(found->permanent);
  CHECK(found->source == "2.1.13");

  store.put_wallet(wallet("for-carol", now, "carol@c.test"));
  CHECK(store.list_wallet("").size() == 2);
  CHECK(store.list_wallet("alice@a.test").size() == 2);
  CHECK(store.list_wallet("nobody@a.test").empty());

  // Deleted only while it still holds that token.
  CHECK_FALSE(store.delete_wallet("alice@a.test", "bob@b.test", "first"));
  CHECK(store.find_wallet("alice@a.test", "bob@b.test"));
  CHECK(store.delete_wallet("alice@a.test", "bob@b.test", "newer"));
  CHECK_FALSE(store.find_wallet("alice@a.test", "bob@b.test"));
}

TEST_CASE("remove_expired drops expired rows and old marks", "[tokens][sqlite_token_store]") {
  TemporaryDirectory directory;
  SqliteTokenStore store(directory.path() / "tokens.db");
  store.add_issued(issued("expired", "pair-1", now - 2000));  // expires now - 1000
  store.add_issued(issued("at-now", "pair-1", now - 1000));   // expires now
  store.add_issued(issued("live", "pair-1", now));            // expires now + 1000
  store.put_wallet(wallet("old", now - 5000));
  store.put_wallet(wallet("fresh", now, "carol@c.test"));
  store.set_revocation_mark("old-mark", now - 100);
  store.set_revocation_mark("new-mark", now);
  CHECK(store.find_issued("expired"));  // cached before the removal

  CHECK(store.remove_expired(now, now - 50) == 4);
  CHECK_FALSE(store.find_issued("expired"));
  CHECK_FALSE(store.find_issued("at-now"));
  CHECK(store.find_issued("live"));
  CHECK_FALSE(store.find_wallet("alice@a.test", "bob@b.test"));
  CHECK(store.find_wallet("alice@a.test", "carol@c.test"));
  CHECK_FALSE(store.revocation_mark("old-mark"));
  CHECK(store.revocation_mark("new-mark") == now);
  CHECK(store.remove_expired(now, now - 50) == 0);
}

TEST_CASE("everything survives closing and reopening", "[tokens][sqlite_token_store]") {
  TemporaryDirectory directory;
  const fs::path file = directory.path() / "tokens.db";
  {
    SqliteTokenStore store(file);
    store.add_issued(issued("kept", "pair-1", now));
    store.set_revocation_mark("pair-1", now);
    store.put_wallet(wallet("wallet", now));
  }
  SqliteTokenStore reopened(file);
  CHECK(reopened.find_issued("kept"));
  CHECK(reopened.revocation_mark("pair-1") == now);
  CHECK(reopened.find_wallet("alice@a.test", "bob@b.test")->token == "wallet");
}

TEST_CASE("a second connection's writes are seen, cached answers included",
          "[tokens][sqlite_token_store]") {
  TemporaryDirectory directory;
  const fs::path file = directory.path() / "tokens.db";
  SqliteTokenStore daemon(file, checking_every_call());
  SqliteTokenStore stokenctl(file);

  // Asked first, so that "nothing" is cached.
  CHECK_FALSE(daemon.revocation_mark("pair-1"));
  CHECK_FALSE(daemon.find_issued("perm"));
  stokenctl.set_revocation_mark("pair-1", now);
  stokenctl.add_issued(issued("perm", "pair-1", now));
  CHECK(daemon.revocation_mark("pair-1") == now);
  CHECK(daemon.find_issued("perm"));

  // And cached "found" answers go when the other connection deletes.
  stokenctl.delete_issued("pair-1");
  CHECK_FALSE(daemon.find_issued("perm"));
  stokenctl.set_revocation_mark("pair-1", now + 5);
  CHECK(daemon.revocation_mark("pair-1") == now + 5);

  // The other direction too: the daemon's own writes update its cache and
  // are in the file for stokenctl.
  daemon.add_issued(issued("from-daemon", "pair-2", now));
  CHECK(daemon.find_issued("from-daemon"));
  CHECK(stokenctl.find_issued("from-daemon"));
}

TEST_CASE("with a check interval, another connection's write shows within it",
          "[tokens][sqlite_token_store]") {
  TemporaryDirectory directory;
  const fs::path file = directory.path() / "tokens.db";
  SqliteTokenStore::Options options;
  options.change_check_interval = 100ms;
  SqliteTokenStore daemon(file, options);
  SqliteTokenStore stokenctl(file);
  CHECK_FALSE(daemon.revocation_mark("pair-1"));
  stokenctl.set_revocation_mark("pair-1", now);
  std::this_thread::sleep_for(150ms);
  CHECK(daemon.revocation_mark("pair-1") == now);
}

TEST_CASE("a full cache empties and refills from the file", "[tokens][sqlite_token_store]") {
  TemporaryDirectory directory;
  SqliteTokenStore::Options options;
  options.max_cached_entries = 3;
  SqliteTokenStore store(directory.path() / "tokens.db", options);
  for (int i = 0; i < 10; ++i) store.set_revocation_mark("pair-" + std::to_string(i), now + i);
  for (int round = 0; round < 2; ++round) {
    for (int i = 0; i < 10; ++i)
      CHECK(store.revocation_mark("pair-" + std::to_string(i)) == now + i);
  }
}

TEST_CASE("a database of another schema version is refused", "[tokens][sqlite_token_store]") {
  TemporaryDirectory directory;
  const fs::path file = directory.path() / "tokens.db";
  { SqliteTokenStore store(file); }
  query_one(file, "PRAGMA user_version = 7");
  try {
    SqliteTokenStore store(file);
    FAIL("opened a version 7 database");
  } catch (const TokenStoreError& error) {
    CHECK(std::string(error.what()) ==
          file.string() + ": schema version 7 is not the version this stokend uses (1)");
  }
}

TEST_CASE("store errors name the file", "[tokens][sqlite_token_store]") {
  TemporaryDirectory directory;
  const fs::path folder = directory.path() / "a-folder";
  fs::create_directory(folder);
  try {
    SqliteTokenStore store(folder);
    FAIL("opened a folder");
  } catch (const TokenStoreError& error) {
    CHECK_THAT(error.what(), Catch::StartsWith(folder.string() + ": "));
  }
  const fs::path not_a_database = directory.path() / "text";
  stokend::testing::write_whole_file(not_a_database, std::string(4096, 'x'));
  try {
    SqliteTokenStore store(not_a_database);
    FAIL("opened a text file");
  } catch (const TokenStoreError& error) {
    CHECK_THAT(error.what(), Catch::StartsWith(not_a_database.string() + ": "));
    CHECK_THAT(error.what(), Catch::Contains("not a database"));
  }
}

TEST_CASE("the store can be used from several threads at once", "[tokens][sqlite_token_store]") {
  TemporaryDirectory directory;
  SqliteTokenStore store(directory.path() / "tokens.db");
  for (int i = 0; i < 50; ++i) store.set_revocation_mark("pair-" + std::to_string(i), now + i);
  std::vector<std::thread> threads;
  std::atomic<int> wrong{0};
  for (int thread = 0; thread < 4; ++thread) {
    threads.emplace_back([&, thread] {
      for (int i = 0; i < 2000; ++i) {
        const int pair = (i * 7 + thread) % 50;
        if (store.revocation_mark("pair-" + std::to_string(pair)) != now + pair) ++wrong;
        if (i % 400 == 0) {
          store.add_issued(
              issued("t" + std::to_string(thread) + "-" + std::to_string(i), "x", now));
        }
      }
    });
  }
  for (std::thread& thread : threads) thread.join();
  CHECK(wrong == 0);
  CHECK(store.list_issued("").size() == 20);
}

TEST_CASE("the token authority works on the SQLite store", "[tokens][sqlite_token_store]") {
  TemporaryDirectory directory;
  const SecretRings rings =
      SecretRings::load_or_create((directory.path() / "token-secrets").string(), now);
  SqliteTokenStore store(directory.path() / "tokens.db");
  std::int64_t clock = now;
  TokenAuthority authority(rings, store, TokenPolicy{}, [&] { return clock; });
  const std::string temporary = authority.mint_temporary("bob@b.test", "alice@a.test");
  const std::string permanent = authority.permanent_for("bob@b.test", "alice@a.test");
  CHECK(authority.verify(temporary, "bob@b.test", "alice@a.test").valid());
  CHECK(authority.verify(permanent, "bob@b.test", "alice@a.test").valid());

  // stokenctl revokes through its own connection; with the default interval
  // the daemon sees it within 100 ms.
  {
    SqliteTokenStore stokenctl_store(directory.path() / "tokens.db");
    TokenAuthority stokenctl(rings, stokenctl_store, TokenPolicy{}, [&] { return clock; });
    stokenctl.revoke("bob@b.test", "alice@a.test");
  }
  std::this_thread::sleep_for(150ms);
  CHECK(authority.verify(temporary, "bob@b.test", "alice@a.test").verdict == TokenVerdict::revoked);
  CHECK(authority.verify(permanent, "bob@b.test", "alice@a.test").verdict ==
        TokenVerdict::unknown_permanent);
}
