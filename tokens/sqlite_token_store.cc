// The SQLite token store; see sqlite_token_store.h for why SQLite and how
// it is set up.
//
// Every statement is prepared once, at open. A statement in use is reset and
// its bindings cleared when the Use guard goes out of scope, also when a
// step throws, so that a failed call leaves no open read transaction behind
// (that would keep this connection from seeing later commits and hold back
// WAL checkpoints).
#include "tokens/sqlite_token_store.h"

#include <fcntl.h>
#include <sqlite3.h>
#include <time.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "common/durable_file.h"
#include "common/unique_fd.h"
#include "tokens/pair_hash.h"

namespace stokend::tokens {
namespace {

// PRAGMA user_version of the schema below. A database of a newer version is
// refused rather than misread.
constexpr std::int64_t schema_version = 1;

constexpr const char* schema_sql = R"sql(
CREATE TABLE issued(
  token TEXT PRIMARY KEY,
  local TEXT NOT NULL,
  remote TEXT NOT NULL,
  pair_hash TEXT NOT NULL,
  created INTEGER NOT NULL,
  expires INTEGER NOT NULL
) WITHOUT ROWID;
CREATE INDEX issued_by_pair_hash ON issued(pair_hash);
CREATE TABLE wallet(
  local TEXT NOT NULL,
  remote TEXT NOT NULL,
  token TEXT NOT NULL,
  pair_hash TEXT NOT NULL,
  created INTEGER NOT NULL,
  expires INTEGER NOT NULL,
  permanent INTEGER NOT NULL,
  source TEXT NOT NULL,
  PRIMARY KEY(local, remote)
) WITHOUT ROWID;
CREATE TABLE revocation(
  pair_hash TEXT PRIMARY KEY,
  revoked_through INTEGER NOT NULL
) WITHOUT ROWID;
PRAGMA user_version = 1;
)sql";

constexpr const char* issued_columns = "token, local, remote, pair_hash, created, expires";
constexpr const char* wallet_columns =
    "local, remote, token, pair_hash, created, expires, permanent, source";

[[noreturn]] void throw_store_error(const std::filesystem::path& file, sqlite3* database,
                                    const std::string& what) {
  std::string message = file.string() + ": " + what;
  if (database != nullptr) message += ": " + std::string(sqlite3_errmsg(database));
  throw TokenStoreError(message);
}

// One use of a prepared statement: binds parameters in order, steps, reads
// columns, and resets the statement when it goes out of scope. Text is bound
// without a copy (SQLITE_STATIC): the caller's strings outlive the guard.
class Use {
 public:
  Use(sqlite3_stmt* statement, const char* what, const std::filesystem::path& file)
      : statement_(statement), what_(what), file_(file) {}
  ~Use() {
    sqlite3_reset(statement_);
    sqlite3_clear_bindings(statement_);
  }
  Use(const Use&) = delete;
  Use& operator=(const Use&) = delete;

  Use& text(std::string_view value) {
    check(sqlite3_bind_text(statement_, ++parameter_, value.data(), static_cast<int>(value.size()),
                            SQLITE_STATIC));
    return *this;
  }
  Use& integer(std::int64_t value) {
    check(sqlite3_bind_int64(statement_, ++parameter_, value));
    return *this;
  }

  // True when a row is ready, false when the statement is done.
  bool step() {
    const int status = sqlite3_step(statement_);
    if (status == SQLITE_ROW) return true;
    if (status != SQLITE_DONE) fail();
    return false;
  }

  std::string column_text(int column) const {
    const auto* text = sqlite3_column_text(statement_, column);
    if (text == nullptr) return {};
    return std::string(reinterpret_cast<const char*>(text),
                       static_cast<std::size_t>(sqlite3_column_bytes(statement_, column)));
  }
  std::int64_t column_integer(int column) const { return sqlite3_column_int64(statement_, column); }

 private:
  void check(int status) {
    if (status != SQLITE_OK) fail();
  }
  [[noreturn]] void fail() { throw_store_error(file_, sqlite3_db_handle(statement_), what_); }

  sqlite3_stmt* statement_;
  const char* what_;
  const std::filesystem::path& file_;
  int parameter_ = 0;
};

IssuedToken issued_from(const Use& row) {
  return IssuedToken{row.column_text(0), row.column_text(1),    row.column_text(2),
                     row.column_text(3), row.column_integer(4), row.column_integer(5)};
}

WalletToken wallet_from(const Use& row) {
  return WalletToken{row.column_text(0),         row.column_text(1),    row.column_text(2),
                     row.column_text(3),         row.column_integer(4), row.column_integer(5),
                     row.column_integer(6) != 0, row.column_text(7)};
}

}  // namespace

void SqliteTokenStore::DatabaseCloser::operator()(sqlite3* database) const {
  sqlite3_close_v2(database);
}

void SqliteTokenStore::StatementFinalizer::operator()(sqlite3_stmt* statement) const {
  sqlite3_finalize(statement);
}

SqliteTokenStore::SqliteTokenStore(std::filesystem::path file)
    : SqliteTokenStore(std::move(file), Options{}) {}

SqliteTokenStore::SqliteTokenStore(std::filesystem::path file, Options options)
    : file_(std::move(file)), options_(options) {
  open();
  create_or_check_schema();

  const std::string issued_select = std::string("SELECT ") + issued_columns + " FROM issued ";
  const std::string wallet_select = std::string("SELECT ") + wallet_columns + " FROM wallet ";
  data_version_ = prepare("PRAGMA data_version");
  insert_issued_ = prepare(
      "INSERT INTO issued(token, local, remote, pair_hash, created, expires) "
      "VALUES(?1, ?2, ?3, ?4, ?5, ?6) ON CONFLICT(token) DO UPDATE SET "
      "local = excluded.local, remote = excluded.remote, pair_hash = excluded.pair_hash, "
      "created = excluded.created, expires = excluded.expires");
  find_issued_ = prepare((issued_select + "WHERE token = ?1").c_str());
  newest_issued_ = prepare(
      (issued_select + "WHERE pair_hash = ?1 AND expires > ?2 ORDER BY created DESC LIMIT 1")
          .c_str());
  delete_issued_ = prepare("DELETE FROM issued WHERE pair_hash = ?1");
  list_all_issued_ = prepare((issued_select + "ORDER BY local, remote, created").c_str());
  list_local_issued_ =
      prepare((issued_select + "WHERE local = ?1 ORDER BY remote, created").c_str());
  set_mark_ = prepare(
      "INSERT INTO revocation(pair_hash, revoked_through) VALUES(?1, ?2) "
      "ON CONFLICT(pair_hash) DO UPDATE SET "
      "revoked_through = max(revoked_through, excluded.revoked_through)");
  find_mark_ = prepare("SELECT revoked_through FROM revocation WHERE pair_hash = ?1");
  // The stored token stays when it is newer: the conflict update's WHERE
  // leaves the row alone, and sqlite3_changes() reports 0.
  put_wallet_ = prepare(
      "INSERT INTO wallet(local, remote, token, pair_hash, created, expires, permanent, source) "
      "VALUES(?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8) ON CONFLICT(local, remote) DO UPDATE SET "
      "token = excluded.token, pair_hash = excluded.pair_hash, created = excluded.created, "
      "expires = excluded.expires, permanent = excluded.permanent, source = excluded.source "
      "WHERE excluded.created >= wallet.created");
  find_wallet_ = prepare((wallet_select + "WHERE local = ?1 AND remote = ?2").c_str());
  delete_wallet_ = prepare("DELETE FROM wallet WHERE local = ?1 AND remote = ?2 AND token = ?3");
  list_all_wallet_ = prepare((wallet_select + "ORDER BY local, remote").c_str());
  list_local_wallet_ = prepare((wallet_select + "WHERE local = ?1 ORDER BY remote").c_str());
  remove_expired_issued_ = prepare("DELETE FROM issued WHERE expires <= ?1");
  remove_expired_wallet_ = prepare("DELETE FROM wallet WHERE expires <= ?1");
  remove_old_marks_ = prepare("DELETE FROM revocation WHERE revoked_through < ?1");
}

SqliteTokenStore::~SqliteTokenStore() = default;

void SqliteTokenStore::fail(const std::string& what) const {
  throw_store_error(file_, database_.get(), what);
}

void SqliteTokenStore::execute(const char* sql, const char* what) {
  char* error = nullptr;
  if (sqlite3_exec(database_.get(), sql, nullptr, nullptr, &error) != SQLITE_OK) {
    const std::string text = error != nullptr ? error : sqlite3_errmsg(database_.get());
    sqlite3_free(error);
    throw TokenStoreError(file_.string() + ": " + what + ": " + text);
  }
}

SqliteTokenStore::Statement SqliteTokenStore::prepare(const char* sql) {
  sqlite3_stmt* statement = nullptr;
  if (sqlite3_prepare_v3(database_.get(), sql, -1, SQLITE_PREPARE_PERSISTENT, &statement,
                         nullptr) != SQLITE_OK) {
    fail(std::string("cannot prepare \"") + sql + "\"");
  }
  return Statement(statement);
}

void SqliteTokenStore::open() {
  if (file_.has_parent_path()) {
    if (const std::error_code error = durable::make_directories(file_.parent_path())) {
      throw TokenStoreError(file_.parent_path().string() + ": cannot create: " + error.message());
    }
  }
  // Created here rather than by SQLite, which would use mode 0644.
  const UniqueFd created(::open(file_.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0600));
  if (!created) {
    throw TokenStoreError(file_.string() + ": cannot open: " + std::strerror(errno));
  }
  sqlite3* database = nullptr;
  // NOMUTEX: mutex_ already serialises every use of the connection.
  const int status = sqlite3_open_v2(file_.c_str(), &database,
                                     SQLITE_OPEN_READWRITE | SQLITE_OPEN_NOMUTEX, nullptr);
  database_.reset(database);
  if (status != SQLITE_OK) fail("cannot open the token store");
  sqlite3_extended_result_codes(database, 1);
  // Keep -wal and -shm after the last close (sqlite_token_store.h: a start
  // on a full file system). Set before WAL mode, which creates them.
  int persist_wal = 1;
  sqlite3_file_control(database, "main", SQLITE_FCNTL_PERSIST_WAL, &persist_wal);
  sqlite3_busy_timeout(database, static_cast<int>(options_.busy_timeout.count()));

  // journal_mode answers with the mode in effect, which stays "delete" when
  // WAL is impossible (e.g. a file system without shared memory).
  sqlite3_stmt* raw = nullptr;
  if (sqlite3_prepare_v2(database, "PRAGMA journal_mode = WAL", -1, &raw, nullptr) != SQLITE_OK) {
    fail("cannot set the WAL journal mode");
  }
  const Statement journal_mode(raw);
  {
    Use use(journal_mode.get(), "cannot set the WAL journal mode", file_);
    if (!use.step() || use.column_text(0) != "wal") {
      fail("cannot use the WAL journal mode (journal_mode is '" + use.column_text(0) + "')");
    }
  }
  execute("PRAGMA synchronous = FULL", "cannot set synchronous = FULL");
}

void SqliteTokenStore::create_or_check_schema() {
  // IMMEDIATE takes the write lock at once: two processes opening a new file
  // together must not both create the tables.
  execute("BEGIN IMMEDIATE", "cannot start the schema transaction");
  try {
    const Statement version_statement = prepare("PRAGMA user_version");
    std::int64_t version = 0;
    {
      Use use(version_statement.get(), "cannot read the schema version", file_);
      if (use.step()) version = use.column_integer(0);
    }
    if (version == 0) {
      execute(schema_sql, "cannot create the schema");
    } else if (version != schema_version) {
      throw TokenStoreError(file_.string() + ": schema version " + std::to_string(version) +
                            " is not the version this stokend uses (" +
                            std::to_string(schema_version) + ")");
    }
    execute("COMMIT", "cannot commit the schema");
  } catch (...) {
    sqlite3_exec(database_.get(), "ROLLBACK", nullptr, nullptr, nullptr);
    throw;
  }
}

void SqliteTokenStore::forget_others_changes() {
  // The coarse clock (a few milliseconds' resolution) is enough for an
  // interval of 100 ms and costs less than half the precise one; this runs
  // for every token verified.
  timespec coarse{};
  ::clock_gettime(CLOCK_MONOTONIC_COARSE, &coarse);
  const auto now = std::chrono::steady_clock::time_point(std::chrono::seconds(coarse.tv_sec) +
                                                         std::chrono::nanoseconds(coarse.tv_nsec));
  if (options_.change_check_interval.count() > 0 && now < next_change_check_) return;
  next_change_check_ = now + options_.change_check_interval;
  Use use(data_version_.get(), "cannot read the data version", file_);
  const std::int64_t version = use.step() ? use.column_integer(0) : -1;
  if (version != seen_data_version_) {
    issued_cache_.clear();
    mark_cache_.clear();
    seen_data_version_ = version;
  }
}

void SqliteTokenStore::add_issued(const IssuedToken& token) {
  IssuedToken stored = token;
  stored.local_address = normalize_address(token.local_address);
  stored.remote_address = normalize_address(token.remote_address);
  std::lock_guard lock(mutex_);
  {
    Use use(insert_issued_.get(), "cannot store an issued token", file_);
    use.text(stored.token)
        .text(stored.local_address)
        .text(stored.remote_address)
        .text(stored.pair_hash)
        .integer(stored.created)
        .integer(stored.expires)
        .step();
  }
  if (issued_cache_.size() >= options_.max_cached_entries) issued_cache_.clear();
  issued_cache_.insert_or_assign(stored.token, std::move(stored));
}

std::optional<IssuedToken> SqliteTokenStore::find_issued(std::string_view token) {
  std::lock_guard lock(mutex_);
  forget_others_changes();
  if (const auto cached = issued_cache_.find(token); cached != issued_cache_.end()) {
    return cached->second;
  }
  std::optional<IssuedToken> found;
  {
    Use use(find_issued_.get(), "cannot look up an issued token", file_);
    use.text(token);
    if (use.step()) found = issued_from(use);
  }
  if (issued_cache_.size() >= options_.max_cached_entries) issued_cache_.clear();
  issued_cache_.emplace(std::string(token), found);
  return found;
}

std::optional<IssuedToken> SqliteTokenStore::newest_issued(std::string_view pair_hash,
                                                           std::int64_t now) {
  std::lock_guard lock(mutex_);
  Use use(newest_issued_.get(), "cannot look up the newest issued token", file_);
  use.text(pair_hash).integer(now);
  if (!use.step()) return std::nullopt;
  return issued_from(use);
}

std::size_t SqliteTokenStore::delete_issued(std::string_view pair_hash) {
  std::lock_guard lock(mutex_);
  {
    Use use(delete_issued_.get(), "cannot delete issued tokens", file_);
    use.text(pair_hash).step();
  }
  const auto deleted = static_cast<std::size_t>(sqlite3_changes(database_.get()));
  // Which cached tokens belong to the pair would take a scan; the cache
  // refills from the file, and deleting is rare.
  issued_cache_.clear();
  return deleted;
}

std::vector<IssuedToken> SqliteTokenStore::list_issued(std::string_view local_address) {
  const std::string local = normalize_address(local_address);
  std::lock_guard lock(mutex_);
  Use use(local.empty() ? list_all_issued_.get() : list_local_issued_.get(),
          "cannot list issued tokens", file_);
  if (!local.empty()) use.text(local);
  std::vector<IssuedToken> tokens;
  while (use.step()) tokens.push_back(issued_from(use));
  return tokens;
}

void SqliteTokenStore::set_revocation_mark(std::string_view pair_hash,
                                           std::int64_t revoked_through) {
  std::lock_guard lock(mutex_);
  {
    Use use(set_mark_.get(), "cannot store a revocation mark", file_);
    use.text(pair_hash).integer(revoked_through).step();
  }
  // The stored mark is the later of two: read it back on the next lookup.
  if (const auto cached = mark_cache_.find(pair_hash); cached != mark_cache_.end()) {
    mark_cache_.erase(cached);
  }
}

std::optional<std::int64_t> SqliteTokenStore::revocation_mark(std::string_view pair_hash) {
  std::lock_guard lock(mutex_);
  forget_others_changes();
  if (const auto cached = mark_cache_.find(pair_hash); cached != mark_cache_.end()) {
    return cached->second;
  }
  std::optional<std::int64_t> mark;
  {
    Use use(find_mark_.get(), "cannot look up a revocation mark", file_);
    use.text(pair_hash);
    if (use.step()) mark = use.column_integer(0);
  }
  if (mark_cache_.size() >= options_.max_cached_entries) mark_cache_.clear();
  mark_cache_.emplace(std::string(pair_hash), mark);
  return mark;
}

bool SqliteTokenStore::put_wallet(const WalletToken& token) {
  const std::string local = normalize_address(token.local_address);
  const std::string remote = normalize_address(token.remote_address);
  std::lock_guard lock(mutex_);
  {
    Use use(put_wallet_.get(), "cannot store a wallet token", file_);
    use.text(local)
        .text(remote)
        .text(token.token)
        .text(token.pair_hash)
        .integer(token.created)
        .integer(token.expires)
        .integer(token.permanent ? 1 : 0)
        .text(token.source)
        .step();
  }
  return sqlite3_changes(database_.get()) > 0;
}

std::optional<WalletToken> SqliteTokenStore::find_wallet(std::string_view local_address,
                                                         std::string_view remote_address) {
  const std::string local = normalize_address(local_address);
  const std::string remote = normalize_address(remote_address);
  std::lock_guard lock(mutex_);
  Use use(find_wallet_.get(), "cannot look up a wallet token", file_);
  use.text(local).text(remote);
  if (!use.step()) return std::nullopt;
  return wallet_from(use);
}

bool SqliteTokenStore::delete_wallet(std::string_view local_address,
                                     std::string_view remote_address, std::string_view token) {
  const std::string local = normalize_address(local_address);
  const std::string remote = normalize_address(remote_address);
  std::lock_guard lock(mutex_);
  {
    Use use(delete_wallet_.get(), "cannot delete a wallet token", file_);
    use.text(local).text(remote).text(token).step();
  }
  return sqlite3_changes(database_.get()) > 0;
}

std::vector<WalletToken> SqliteTokenStore::list_wallet(std::string_view local_address) {
  const std::string local = normalize_address(local_address);
  std::lock_guard lock(mutex_);
  Use use(local.empty() ? list_all_wallet_.get() : list_local_wallet_.get(),
          "cannot list wallet tokens", file_);
  if (!local.empty()) use.text(local);
  std::vector<WalletToken> tokens;
  while (use.step()) tokens.push_back(wallet_from(use));
  return tokens;
}

std::size_t SqliteTokenStore::remove_expired(std::int64_t now,
                                             std::int64_t oldest_mark_worth_keeping) {
  std::lock_guard lock(mutex_);
  std::size_t removed = 0;
  // One transaction: one fsync for the three deletions.
  execute("BEGIN IMMEDIATE", "cannot start removing expired tokens");
  try {
    for (sqlite3_stmt* statement :
         {remove_expired_issued_.get(), remove_expired_wallet_.get(), remove_old_marks_.get()}) {
      Use use(statement, "cannot remove expired tokens", file_);
      use.integer(statement == remove_old_marks_.get() ? oldest_mark_worth_keeping : now).step();
      removed += static_cast<std::size_t>(sqlite3_changes(database_.get()));
    }
    execute("COMMIT", "cannot commit removing expired tokens");
  } catch (...) {
    sqlite3_exec(database_.get(), "ROLLBACK", nullptr, nullptr, nullptr);
    throw;
  }
  issued_cache_.clear();
  mark_cache_.clear();
  return removed;
}

}  // namespace stokend::tokens
