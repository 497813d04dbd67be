// SqliteTokenStore: the embedded default TokenStore, one SQLite database file
// (config key tokens.store, default <spool_directory>/tokens.db).
//
// Why SQLite: the store needs crash-safe transactions (a permanent token
// announced in a 2.1.13 reply must survive a crash), readers that keep
// working while another process writes (stokenctl edits the file while the
// daemon runs), and no server to run. SQLite in WAL mode gives all three in
// one file; a store of our own would re-implement journaling, locking and
// recovery. The issue allowed "SQLite in WAL mode in one file under the
// spool, or another embedded store if you can justify it better".
//
// Set-up: WAL journal, synchronous=FULL (every commit is fsynced before the
// call returns: issuing is rare, losing an issued token is not acceptable),
// a busy timeout so that the daemon and stokenctl wait for each other instead
// of failing, the schema versioned with PRAGMA user_version, the file created
// with mode 0600 (its tokens let their holders deliver mail; SQLite gives the
// -wal and -shm files the same mode), and a persistent WAL
// (SQLITE_FCNTL_PERSIST_WAL): the -wal and -shm files stay when the last
// connection closes, so that opening and reading the store later creates
// nothing. Without it a daemon could not start on a full file system (the
// default store lives in the spool folder): SQLite cannot create the -shm
// file there, and the open fails. Writes still need space and fail (with
// TokenStoreError) while the disk is full.
//
// Speed: verification asks revocation_mark() (temporary tokens) or
// find_issued() (permanent tokens) for every token, so both answer from an
// in-memory cache of the rows already read (found or not), and go to the
// file only on a miss. Writes through this object update the cache at once.
// Writes by another connection (stokenctl, another SqliteTokenStore) are
// noticed through PRAGMA data_version, which changes when another connection
// commits. That pragma costs about 2 µs (it opens and closes a read
// transaction, with file locks), twice a whole verification (about 0.9 µs,
// bench/token_verify.cc), so it runs at most once per
// Options::change_check_interval: another process's revocation takes effect
// here within that interval (0: checked on every call, about 320,000
// verifications per second instead of 1,100,000).
//
// Contract (token_store.h): thread-safe (one mutex around the connection
// and the caches); every write is committed and durable when the call
// returns; failures throw TokenStoreError naming the file and SQLite's
// message.
#pragma once

#include <chrono>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "tokens/token_store.h"

struct sqlite3;
struct sqlite3_stmt;

namespace stokend::tokens {

class SqliteTokenStore : public TokenStore {
 public:
  struct Options {
    // How long a call waits for another process's write transaction.
    std::chrono::milliseconds busy_timeout{5000};
    // How often the caches check whether another connection committed.
    std::chrono::milliseconds change_check_interval{100};
    // Entries per cache; a full cache is emptied and refills from the file.
    std::size_t max_cached_entries = 100000;
  };

  // Opens the database, creating the file (and its folder) and the schema
  // when missing. Throws TokenStoreError.
  explicit SqliteTokenStore(std::filesystem::path file);
  SqliteTokenStore(std::filesystem::path file, Options options);
  ~SqliteTokenStore() override;
  SqliteTokenStore(const SqliteTokenStore&) = delete;
  SqliteTokenStore& operator=(const SqliteTokenStore&) = delete;

  const std::filesystem::path& file() const { return file_; }

  void add_issued(const IssuedToken& token) override;
  std::optional<IssuedToken> find_issued(std::string_view token) override;
  std::optional<IssuedToken> newest_issued(std::string_view pair_hash, std::int64_t now) override;
  std::size_t delete_issued(std::string_view pair_hash) override;
  std::vector<IssuedToken> list_issued(std::string_view local_address) override;

  void set_revocation_mark(std::string_view pair_hash, std::int64_t revoked_through) override;
  std::optional<std::int64_t> revocation_mark(std::string_view pair_hash) override;

  bool put_wallet(const WalletToken& token) override;
  std::optional<WalletToken> find_wallet(std::string_view local_address,
                                         std::string_view remote_address) override;
  bool delete_wallet(std::string_view local_address, std::string_view remote_address,
                     std::string_view token) override;
  std::vector<WalletToken> list_wallet(std::string_view local_address) override;

  std::size_t remove_expired(std::int64_t now, std::int64_t oldest_mark_worth_keeping) override;

 private:
  struct DatabaseCloser {
    void operator()(sqlite3* database) const;
  };
  struct StatementFinalizer {
    void operator()(sqlite3_stmt* statement) const;
  };
  using Statement = std::unique_ptr<sqlite3_stmt, StatementFinalizer>;

  // Lets the caches find a std::string key from a std::string_view.
  struct TextHash {
    using is_transparent = void;
    std::size_t operator()(std::string_view text) const {
      return std::hash<std::string_view>{}(text);
    }
  };
  template <typename Value>
  using TextMap = std::unordered_map<std::string, Value, TextHash, std::equal_to<>>;

  [[noreturn]] void fail(const std::string& what) const;
  void execute(const char* sql, const char* what);
  Statement prepare(const char* sql);
  void open();
  void create_or_check_schema();
  // Empties the caches when another connection committed since the last
  // check (at most once per change_check_interval). Called with mutex_ held.
  void forget_others_changes();
  std::optional<IssuedToken> read_issued(sqlite3_stmt* statement);

  std::filesystem::path file_;
  Options options_;
  std::mutex mutex_;
  // Declared before the statements, so that they are finalised first.
  std::unique_ptr<sqlite3, DatabaseCloser> database_;
  Statement data_version_;
  Statement insert_issued_;
  Statement find_issued_;
  Statement newest_issued_;
  Statement delete_issued_;
  Statement list_all_issued_;
  Statement list_local_issued_;
  Statement set_mark_;
  Statement find_mark_;
  Statement put_wallet_;
  Statement find_wallet_;
  Statement delete_wallet_;
  Statement list_all_wallet_;
  Statement list_local_wallet_;
  Statement remove_expired_issued_;
  Statement remove_expired_wallet_;
  Statement remove_old_marks_;

  std::int64_t seen_data_version_ = -1;
  std::chrono::steady_clock::time_point next_change_check_{};
  TextMap<std::optional<IssuedToken>> issued_cache_;  // by token text; nullopt: not stored
  TextMap<std::optional<std::int64_t>> mark_cache_;   // by pair hash; nullopt: no mark
};

}  // namespace stokend::tokens
