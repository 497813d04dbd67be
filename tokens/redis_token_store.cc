// The Redis token store; see redis_token_store.h for the key layout, the
// durability and the failure behaviour.
//
// Each write is one Lua script (EVAL): atomic on the server, one round
// trip, and the interface's rules (later mark wins, newer wallet token
// wins, conditional delete) hold when several nodes write at once. Scripts
// read keys named in index sets rather than in KEYS, which is fine on a
// single Redis primary and is why Redis Cluster is not supported.
#include "tokens/redis_token_store.h"

#include <hiredis/hiredis.h>

#include <algorithm>
#include <charconv>
#include <tuple>

#include "tokens/pair_hash.h"
#include "tokens/token_metrics.h"
#include "tokens/token_scan.h"

namespace stokend::tokens {
namespace {

// EXPIRETIME (Redis 7.0) is -1 without expiry and -2 without key: both are
// below any time, so the expiry only ever moves later.
constexpr const char* extend_function = R"lua(
local function extend(key, at)
  if redis.call('EXPIRETIME', key) < at then redis.call('EXPIREAT', key, at) end
end
)lua";

// ARGV: token local remote pair created expires, the changes channel.
const std::string add_issued_script = std::string(extend_function) + R"lua(
local expires = tonumber(ARGV[6])
redis.call('HSET', KEYS[1], 'local', ARGV[2], 'remote', ARGV[3], 'pair', ARGV[4],
           'created', ARGV[5], 'expires', ARGV[6])
redis.call('EXPIREAT', KEYS[1], expires)
redis.call('ZADD', KEYS[2], ARGV[5], ARGV[1])
redis.call('SADD', KEYS[3], ARGV[1])
extend(KEYS[2], expires)
extend(KEYS[3], expires)
redis.call('PUBLISH', ARGV[7], ARGV[4])
return 1
)lua";

// ARGV: now, issued key prefix, pair hash.
constexpr const char* newest_issued_script = R"lua(
for _, token in ipairs(redis.call('ZREVRANGE', KEYS[1], 0, -1)) do
  local row = redis.call('HMGET', ARGV[2] .. token, 'local', 'remote', 'pair', 'created', 'expires')
  if row[1] and row[3] == ARGV[3] and tonumber(row[5]) > tonumber(ARGV[1]) then
    return {token, row[1], row[2], row[3], row[4], row[5]}
  end
end
return false
)lua";

// ARGV: issued key prefix, local index prefix, pair hash, the changes
// channel.
constexpr const char* delete_issued_script = R"lua(
local count = 0
for _, token in ipairs(redis.call('ZRANGE', KEYS[1], 0, -1)) do
  local row = redis.call('HMGET', ARGV[1] .. token, 'local', 'pair')
  if row[1] and row[2] == ARGV[3] then
    redis.call('DEL', ARGV[1] .. token)
    redis.call('SREM', ARGV[2] .. row[1], token)
    count = count + 1
  end
end
redis.call('DEL', KEYS[1])
if count > 0 then redis.call('PUBLISH', ARGV[4], ARGV[3]) end
return count
)lua";

// ARGV: issued key prefix, then tokens. Rows of the tokens still stored.
constexpr const char* fetch_issued_script = R"lua(
local rows = {}
for i = 2, #ARGV do
  local row = redis.call('HMGET', ARGV[1] .. ARGV[i], 'local', 'remote', 'pair', 'created', 'expires')
  if row[1] then rows[#rows + 1] = {ARGV[i], row[1], row[2], row[3], row[4], row[5]} end
end
return rows
)lua";

// ARGV: revoked_through, lifetime in seconds, the changes channel, the pair
// hash. The later mark stays.
constexpr const char* set_mark_script = R"lua(
local through = tonumber(ARGV[1])
local current = redis.call('GET', KEYS[1])
if current and tonumber(current) >= through then return 0 end
redis.call('SET', KEYS[1], ARGV[1], 'EXAT', through + tonumber(ARGV[2]))
redis.call('PUBLISH', ARGV[3], ARGV[4])
return 1
)lua";

// ARGV: local remote token pair created expires permanent source.
const std::string put_wallet_script = std::string(extend_function) + R"lua(
local current = redis.call('HGET', KEYS[1], 'created')
if current and tonumber(current) > tonumber(ARGV[5]) then return 0 end
redis.call('HSET', KEYS[1], 'local', ARGV[1], 'remote', ARGV[2], 'token', ARGV[3],
           'pair', ARGV[4], 'created', ARGV[5], 'expires', ARGV[6], 'permanent', ARGV[7],
           'source', ARGV[8])
redis.call('EXPIREAT', KEYS[1], ARGV[6])
redis.call('SADD', KEYS[2], ARGV[2])
extend(KEYS[2], tonumber(ARGV[6]))
return 1
)lua";

// ARGV: token, remote.
constexpr const char* delete_wallet_script = R"lua(
if redis.call('HGET', KEYS[1], 'token') ~= ARGV[1] then return 0 end
redis.call('DEL', KEYS[1])
redis.call('SREM', KEYS[2], ARGV[2])
return 1
)lua";

// ARGV: wallet keys. Rows of the entries still stored.
constexpr const char* fetch_wallet_script = R"lua(
local rows = {}
for i = 1, #ARGV do
  local row = redis.call('HMGET', ARGV[i], 'local', 'remote', 'token', 'pair', 'created',
                         'expires', 'permanent', 'source')
  if row[1] then rows[#rows + 1] = row end
end
return rows
)lua";

// remove_expired, one batch of SCAN results per call. ARGV: now, the
// issued, local and pair prefixes, the changes channel, then issued keys.
// Deletes the tokens whose time is up and their index entries.
constexpr const char* expire_issued_script = R"lua(
local count = 0
for i = 6, #ARGV do
  local row = redis.call('HMGET', ARGV[i], 'local', 'pair', 'expires')
  if row[3] and tonumber(row[3]) <= tonumber(ARGV[1]) then
    local token = string.sub(ARGV[i], #ARGV[2] + 1)
    redis.call('DEL', ARGV[i])
    redis.call('SREM', ARGV[3] .. row[1], token)
    redis.call('ZREM', ARGV[4] .. row[2], token)
    redis.call('PUBLISH', ARGV[5], row[2])
    count = count + 1
  end
end
return count
)lua";

// ARGV: now, wallets index prefix, then wallet keys.
constexpr const char* expire_wallet_script = R"lua(
local count = 0
for i = 3, #ARGV do
  local row = redis.call('HMGET', ARGV[i], 'local', 'remote', 'expires')
  if row[3] and tonumber(row[3]) <= tonumber(ARGV[1]) then
    redis.call('DEL', ARGV[i])
    redis.call('SREM', ARGV[2] .. row[1], row[2])
    count = count + 1
  end
end
return count
)lua";

// Index members whose key Redis expired. ARGV: 'wallets' or 'issued' (what
// the members name), the member key prefix, the index key prefix, then index
// keys of one kind. A wallets index of LOCAL names REMOTEs, whose key is
// completed with LOCAL's length and LOCAL (redis_token_store.h).
constexpr const char* prune_index_script = R"lua(
local count = 0
for i = 4, #ARGV do
  local index = ARGV[i]
  local zset = redis.call('TYPE', index)['ok'] == 'zset'
  local members
  if zset then members = redis.call('ZRANGE', index, 0, -1)
  else members = redis.call('SMEMBERS', index) end
  local prefix = ARGV[2]
  if ARGV[1] == 'wallets' then
    local owner = string.sub(index, #ARGV[3] + 1)
    prefix = ARGV[2] .. #owner .. ':' .. owner .. ':'
  end
  for _, member in ipairs(members) do
    if redis.call('EXISTS', prefix .. member) == 0 then
      if zset then redis.call('ZREM', index, member)
      else redis.call('SREM', index, member) end
      count = count + 1
    end
  end
end
return count
)lua";

// ARGV: oldest mark worth keeping, the changes channel, the mark prefix,
// then mark keys.
constexpr const char* remove_old_marks_script = R"lua(
local count = 0
for i = 4, #ARGV do
  local value = redis.call('GET', ARGV[i])
  if value and tonumber(value) < tonumber(ARGV[1]) then
    redis.call('DEL', ARGV[i])
    redis.call('PUBLISH', ARGV[2], string.sub(ARGV[i], #ARGV[3] + 1))
    count = count + 1
  end
end
return count
)lua";

// ARGV: key prefix, then id, fingerprint pairs. The first node to claim an
// id sets its fingerprint; returns the ids recorded with another one.
constexpr const char* claim_secrets_script = R"lua(
local conflicts = {}
for i = 2, #ARGV, 2 do
  local key = ARGV[1] .. ARGV[i]
  local recorded = redis.call('GET', key)
  if not recorded then
    redis.call('SET', key, ARGV[i + 1], 'EX', 63072000)
  elseif recorded ~= ARGV[i + 1] then
    conflicts[#conflicts + 1] = ARGV[i]
  end
end
return conflicts
)lua";

constexpr std::size_t batch_size = 500;

std::string text_of(const redisReply* reply) {
  if (reply == nullptr || reply->str == nullptr) return {};
  return std::string(reply->str, reply->len);
}

std::int64_t integer_of(const redisReply* reply) {
  if (reply == nullptr) return 0;
  if (reply->type == REDIS_REPLY_INTEGER) return reply->integer;
  std::int64_t value = 0;
  if (reply->str != nullptr) std::from_chars(reply->str, reply->str + reply->len, value);
  return value;
}

// "*", "?", "[", "]" and "\" match themselves in a SCAN pattern when escaped.
std::string glob_escaped(std::string_view text) {
  std::string escaped;
  for (char c : text) {
    if (c == '*' || c == '?' || c == '[' || c == ']' || c == '\\') escaped += '\\';
    escaped += c;
  }
  return escaped;
}

IssuedToken issued_from_row(const redisReply* row) {
  return IssuedToken{text_of(row->element[0]),    text_of(row->element[1]),
                     text_of(row->element[2]),    text_of(row->element[3]),
                     integer_of(row->element[4]), integer_of(row->element[5])};
}

WalletToken wallet_from_row(const redisReply* row) {
  return WalletToken{text_of(row->element[0]),        text_of(row->element[1]),
                     text_of(row->element[2]),        text_of(row->element[3]),
                     integer_of(row->element[4]),     integer_of(row->element[5]),
                     text_of(row->element[6]) == "1", text_of(row->element[7])};
}

}  // namespace

RedisTokenStore::RedisTokenStore(Options options)
    : options_(std::move(options)),
      connections_(options_.connection),
      channel_(options_.key_prefix + "changes") {
  if (!options_.verification_cache) return;
  cache_ = std::make_unique<VerificationCache>(options_.cache);
  RedisInvalidations::Options listener;
  listener.endpoint = options_.connection.endpoint;
  listener.password = options_.connection.password;
  listener.channel = channel_;
  listener.connect_timeout = options_.connection.connect_timeout;
  listener.ping_interval = options_.ping_interval;
  listener.silence_limit = options_.silence_limit;
  listener.min_retry_delay = options_.connection.min_retry_delay;
  listener.max_retry_delay = options_.connection.max_retry_delay;
  invalidations_ = std::make_unique<RedisInvalidations>(std::move(listener), *cache_);
}

RedisTokenStore::~RedisTokenStore() = default;

void RedisTokenStore::count_cache_read() const {
  (cache_->live() ? token_metrics().cache_misses : token_metrics().cache_bypassed)->inc();
}

void RedisTokenStore::forget_pair(std::string_view pair_hash) {
  if (cache_) cache_->invalidate(pair_hash);
}

std::string RedisTokenStore::key(std::string_view kind, std::string_view name) const {
  std::string text = options_.key_prefix;
  text.append(kind).append(":").append(name);
  return text;
}

std::string RedisTokenStore::wallet_key(std::string_view local, std::string_view remote) const {
  return key("wallet",
             std::to_string(local.size()) + ":" + std::string(local) + ":" + std::string(remote));
}

RedisConnections::Reply RedisTokenStore::run(const std::vector<std::string_view>& words,
                                             const char* what) {
  return connections_.command(words, what);
}

RedisConnections::Reply RedisTokenStore::write(const std::vector<std::string_view>& words,
                                               const char* what) {
  if (options_.wait_replicas <= 0) return run(words, what);
  // WAIT counts the writes of its own connection: same pipeline.
  const std::string replicas = std::to_string(options_.wait_replicas);
  const std::string timeout = std::to_string(options_.wait_timeout.count());
  auto replies = connections_.pipeline({words, {"WAIT", replicas, timeout}}, what);
  const std::int64_t acknowledged = integer_of(replies[1].get());
  if (acknowledged < options_.wait_replicas) {
    throw TokenStoreError(describe() + ": " + what + ": only " + std::to_string(acknowledged) +
                          " of " + replicas + " replicas acknowledged the write within " + timeout +
                          " ms");
  }
  return std::move(replies[0]);
}

std::vector<std::string> RedisTokenStore::scan(std::string_view pattern, const char* what) {
  std::vector<std::string> keys;
  std::string cursor = "0";
  const std::string count = std::to_string(batch_size);
  do {
    const auto reply = run({"SCAN", cursor, "MATCH", pattern, "COUNT", count}, what);
    if (reply->type != REDIS_REPLY_ARRAY || reply->elements != 2) {
      throw TokenStoreError(describe() + ": " + what + ": unexpected SCAN reply");
    }
    cursor = text_of(reply->element[0]);
    const redisReply* found = reply->element[1];
    for (std::size_t i = 0; i < found->elements; ++i) keys.push_back(text_of(found->element[i]));
  } while (cursor != "0");
  std::sort(keys.begin(), keys.end());
  keys.erase(std::unique(keys.begin(), keys.end()), keys.end());  // SCAN may repeat a key
  return keys;
}

std::vector<IssuedToken> RedisTokenStore::fetch_issued(const std::vector<std::string>& tokens) {
  std::vector<IssuedToken> rows;
  const std::string prefix = key("issued", "");
  for (std::size_t start = 0; start < tokens.size(); start += batch_size) {
    std::vector<std::string_view> words{"EVAL", fetch_issued_script, "0", prefix};
    for (std::size_t i = start; i < std::min(tokens.size(), start + batch_size); ++i) {
      words.push_back(tokens[i]);
    }
    const auto reply = run(words, "cannot read issued tokens");
    for (std::size_t i = 0; i < reply->elements; ++i) {
      rows.push_back(issued_from_row(reply->element[i]));
    }
  }
  return rows;
}

std::vector<WalletToken> RedisTokenStore::fetch_wallet(const std::vector<std::string>& keys) {
  std::vector<WalletToken> rows;
  for (std::size_t start = 0; start < keys.size(); start += batch_size) {
    std::vector<std::string_view> words{"EVAL", fetch_wallet_script, "0"};
    for (std::size_t i = start; i < std::min(keys.size(), start + batch_size); ++i) {
      words.push_back(keys[i]);
    }
    const auto reply = run(words, "cannot read wallet tokens");
    for (std::size_t i = 0; i < reply->elements; ++i) {
      rows.push_back(wallet_from_row(reply->element[i]));
    }
  }
  return rows;
}

void RedisTokenStore::add_issued(const IssuedToken& token) {
  const std::string local = normalize_address(token.local_address);
  const std::string remote = normalize_address(token.remote_address);
  const std::string created = std::to_string(token.created);
  const std::string expires = std::to_string(token.expires);
  const ForgetPair forget{this, token.pair_hash};
  write({"EVAL", add_issued_script, "3", key("issued", token.token), key("pair", token.pair_hash),
         key("local", local), token.token, local, remote, token.pair_hash, created, expires,
         channel_},
        "cannot store an issued token");
}

std::optional<IssuedToken> RedisTokenStore::find_issued(std::string_view token) {
  if (!cache_) return read_issued(token);
  if (auto cached = cache_->issued(token)) {
    token_metrics().cache_hits->inc();
    return std::move(*cached);
  }
  count_cache_read();
  const VerificationCache::Sequence read_at = cache_->sequence();
  auto row = read_issued(token);
  // A token not stored is remembered under its own pair hash, so that
  // adding it (which announces that pair) drops the entry; a text that
  // does not parse is not remembered at all.
  std::string_view pair = row ? std::string_view(row->pair_hash) : std::string_view();
  NamedTokenScan fields;
  if (!row && scan_named_token(token, fields).empty()) pair = fields.hash;
  if (!pair.empty()) cache_->insert_issued(read_at, token, pair, row);
  return row;
}

std::optional<IssuedToken> RedisTokenStore::read_issued(std::string_view token) {
  const auto reply =
      run({"HMGET", key("issued", token), "local", "remote", "pair", "created", "expires"},
          "cannot look up an issued token");
  if (reply->type != REDIS_REPLY_ARRAY || reply->elements != 5 ||
      reply->element[0]->type == REDIS_REPLY_NIL) {
    return std::nullopt;
  }
  return IssuedToken{
      std::string(token),         text_of(reply->element[0]),    text_of(reply->element[1]),
      text_of(reply->element[2]), integer_of(reply->element[3]), integer_of(reply->element[4])};
}

std::optional<IssuedToken> RedisTokenStore::newest_issued(std::string_view pair_hash,
                                                          std::int64_t now) {
  const std::string now_text = std::to_string(now);
  const auto reply = run({"EVAL", newest_issued_script, "1", key("pair", pair_hash), now_text,
                          key("issued", ""), pair_hash},
                         "cannot look up the newest issued token");
  if (reply->type != REDIS_REPLY_ARRAY || reply->elements != 6) return std::nullopt;
  return issued_from_row(reply.get());
}

std::size_t RedisTokenStore::delete_issued(std::string_view pair_hash) {
  const ForgetPair forget{this, pair_hash};
  const auto reply = write({"EVAL", delete_issued_script, "1", key("pair", pair_hash),
                            key("issued", ""), key("local", ""), pair_hash, channel_},
                           "cannot delete issued tokens");
  return static_cast<std::size_t>(integer_of(reply.get()));
}

std::vector<IssuedToken> RedisTokenStore::list_issued(std::string_view local_address) {
  const std::string local = normalize_address(local_address);
  std::vector<std::string> tokens;
  if (local.empty()) {
    const std::string prefix = key("issued", "");
    for (auto& found : scan(glob_escaped(prefix) + "*", "cannot list issued tokens")) {
      tokens.push_back(found.substr(prefix.size()));
    }
  } else {
    const auto reply = run({"SMEMBERS", key("local", local)}, "cannot list issued tokens");
    for (std::size_t i = 0; i < reply->elements; ++i) tokens.push_back(text_of(reply->element[i]));
  }
  std::vector<IssuedToken> rows = fetch_issued(tokens);
  if (!local.empty()) {
    std::erase_if(rows, [&](const IssuedToken& row) { return row.local_address != local; });
  }
  std::sort(rows.begin(), rows.end(), [](const IssuedToken& a, const IssuedToken& b) {
    return std::tie(a.local_address, a.remote_address, a.created, a.token) <
           std::tie(b.local_address, b.remote_address, b.created, b.token);
  });
  return rows;
}

void RedisTokenStore::set_revocation_mark(std::string_view pair_hash,
                                          std::int64_t revoked_through) {
  const std::string through = std::to_string(revoked_through);
  const std::string lifetime = std::to_string(options_.mark_lifetime.count());
  const ForgetPair forget{this, pair_hash};
  write({"EVAL", set_mark_script, "1", key("mark", pair_hash), through, lifetime, channel_,
         pair_hash},
        "cannot store a revocation mark");
}

std::optional<std::int64_t> RedisTokenStore::revocation_mark(std::string_view pair_hash) {
  if (!cache_) return read_mark(pair_hash);
  if (const auto cached = cache_->mark(pair_hash)) {
    token_metrics().cache_hits->inc();
    return *cached;
  }
  count_cache_read();
  const VerificationCache::Sequence read_at = cache_->sequence();
  const auto mark = read_mark(pair_hash);
  cache_->insert_mark(read_at, pair_hash, mark);
  return mark;
}

std::optional<std::int64_t> RedisTokenStore::read_mark(std::string_view pair_hash) {
  const auto reply = run({"GET", key("mark", pair_hash)}, "cannot look up a revocation mark");
  if (reply->type == REDIS_REPLY_NIL) return std::nullopt;
  return integer_of(reply.get());
}

bool RedisTokenStore::put_wallet(const WalletToken& token) {
  const std::string local = normalize_address(token.local_address);
  const std::string remote = normalize_address(token.remote_address);
  const std::string created = std::to_string(token.created);
  const std::string expires = std::to_string(token.expires);
  const auto reply = write({"EVAL", put_wallet_script, "2", wallet_key(local, remote),
                            key("wallets", local), local, remote, token.token, token.pair_hash,
                            created, expires, token.permanent ? "1" : "0", token.source},
                           "cannot store a wallet token");
  return integer_of(reply.get()) == 1;
}

std::optional<WalletToken> RedisTokenStore::find_wallet(std::string_view local_address,
                                                        std::string_view remote_address) {
  const std::string local = normalize_address(local_address);
  const std::string remote = normalize_address(remote_address);
  const auto reply = run({"HMGET", wallet_key(local, remote), "local", "remote", "token", "pair",
                          "created", "expires", "permanent", "source"},
                         "cannot look up a wallet token");
  if (reply->type != REDIS_REPLY_ARRAY || reply->elements != 8 ||
      reply->element[0]->type == REDIS_REPLY_NIL) {
    return std::nullopt;
  }
  return wallet_from_row(reply.get());
}

bool RedisTokenStore::delete_wallet(std::string_view local_address, std::string_view remote_address,
                                    std::string_view token) {
  const std::string local = normalize_address(local_address);
  const std::string remote = normalize_address(remote_address);
  const auto reply = write({"EVAL", delete_wallet_script, "2", wallet_key(local, remote),
                            key("wallets", local), token, remote},
                           "cannot delete a wallet token");
  return integer_of(reply.get()) == 1;
}

std::vector<WalletToken> RedisTokenStore::list_wallet(std::string_view local_address) {
  const std::string local = normalize_address(local_address);
  std::vector<std::string> keys;
  if (local.empty()) {
    keys = scan(glob_escaped(key("wallet", "")) + "*", "cannot list wallet tokens");
  } else {
    const auto reply = run({"SMEMBERS", key("wallets", local)}, "cannot list wallet tokens");
    for (std::size_t i = 0; i < reply->elements; ++i) {
      keys.push_back(wallet_key(local, text_of(reply->element[i])));
    }
  }
  std::vector<WalletToken> rows = fetch_wallet(keys);
  std::sort(rows.begin(), rows.end(), [](const WalletToken& a, const WalletToken& b) {
    return std::tie(a.local_address, a.remote_address) <
           std::tie(b.local_address, b.remote_address);
  });
  return rows;
}

void RedisTokenStore::ping() { run({"PING"}, "PING failed"); }

std::string RedisTokenStore::persistence_summary() {
  try {
    const auto reply = run({"INFO", "persistence"}, "INFO failed");
    const std::string info = text_of(reply.get());
    std::string summary;
    for (const std::string_view field : {"aof_enabled:", "aof_last_write_status:"}) {
      const std::size_t at = info.find(field);
      if (at == std::string::npos) continue;
      const std::size_t end = info.find_first_of("\r\n", at);
      if (!summary.empty()) summary += " ";
      summary += info.substr(at, end - at);
    }
    return summary;
  } catch (const TokenStoreError&) {
    return {};
  }
}

std::vector<std::string> RedisTokenStore::claim_secret_fingerprints(
    const std::vector<std::pair<std::string, std::string>>& fingerprints) {
  const std::string prefix = key("secret", "");
  std::vector<std::string_view> words{"EVAL", claim_secrets_script, "0", prefix};
  for (const auto& [id, fingerprint] : fingerprints) {
    words.push_back(id);
    words.push_back(fingerprint);
  }
  const auto reply = write(words, "cannot compare the token secrets");
  std::vector<std::string> conflicts;
  for (std::size_t i = 0; i < reply->elements; ++i) conflicts.push_back(text_of(reply->element[i]));
  return conflicts;
}

std::size_t RedisTokenStore::remove_expired(std::int64_t now,
                                            std::int64_t oldest_mark_worth_keeping) {
  const std::string now_text = std::to_string(now);
  std::size_t removed = 0;
  auto in_batches = [&](const std::string& pattern, const std::vector<std::string>& head,
                        const char* script, const char* what) {
    const std::vector<std::string> keys = scan(pattern, what);
    for (std::size_t start = 0; start < keys.size(); start += batch_size) {
      std::vector<std::string_view> words{"EVAL", script, "0"};
      for (const auto& word : head) words.push_back(word);
      for (std::size_t i = start; i < std::min(keys.size(), start + batch_size); ++i) {
        words.push_back(keys[i]);
      }
      removed += static_cast<std::size_t>(integer_of(run(words, what).get()));
    }
  };
  // This node's cache forgets everything once the rows are gone (thrown or
  // not); the scripts announce each pair to the other nodes.
  struct ForgetAll {
    VerificationCache* cache;
    ~ForgetAll() {
      if (cache) cache->forget_everything();
    }
  } forget{cache_.get()};
  in_batches(glob_escaped(key("issued", "")) + "*",
             {now_text, key("issued", ""), key("local", ""), key("pair", ""), channel_},
             expire_issued_script, "cannot remove expired issued tokens");
  in_batches(glob_escaped(key("wallet", "")) + "*", {now_text, key("wallets", "")},
             expire_wallet_script, "cannot remove expired wallet tokens");
  in_batches(glob_escaped(key("mark", "")) + "*",
             {std::to_string(oldest_mark_worth_keeping), channel_, key("mark", "")},
             remove_old_marks_script, "cannot remove old revocation marks");
  // Index entries of keys Redis expired by itself; not counted as rows.
  const std::size_t rows = removed;
  in_batches(glob_escaped(key("pair", "")) + "*", {"issued", key("issued", ""), key("pair", "")},
             prune_index_script, "cannot tidy the pair index");
  in_batches(glob_escaped(key("local", "")) + "*", {"issued", key("issued", ""), key("local", "")},
             prune_index_script, "cannot tidy the local index");
  in_batches(glob_escaped(key("wallets", "")) + "*",
             {"wallets", key("wallet", ""), key("wallets", "")}, prune_index_script,
             "cannot tidy the wallet index");
  return rows;
}

}  // namespace stokend::tokens
