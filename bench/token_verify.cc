// Token verification benchmark: verifications per second on one thread.
//
//   (a) the MAC check alone (HMAC-SHA-256 over the signed part and a
//       constant-time compare), with OpenSSL (what stokend uses) and with
//       libsodium's crypto_auth_hmacsha256 (for comparison);
//   (b) TokenAuthority::verify of a temporary token for a (remote, local)
//       pair: parse, MAC, times, the revocation-mark lookup in the real
//       SqliteTokenStore, and the pair hash (SHA3-256) of the addresses;
//       also with the store checking PRAGMA data_version on every call
//       instead of every 100 ms;
//   (c) TokenAuthority::verify of a permanent token (store lookup);
//   (p) the parts of a verification on their own: parsing, the pair hash
//       (pair_hash.cc's and the verification path's), the mark lookup.
//   (r) (b) and (c) on the Redis store (tokens/redis_token_store.h), a
//       private redis-server on a unix socket in the temporary folder
//       (appendonly yes, appendfsync always): with the verification cache
//       kept current over pub/sub (what the daemon runs), and without it
//       (one round trip per verification); and revocation propagation
//       between two nodes: node 1 revokes, node 2 (cached) verifies a token
//       of the pair until it is refused, 200 times, p50 and p99 of
//       revoke-to-refused. Skipped when redis-server is not installed.
//       `token_verify 1 bcr` gives both backends in one run. The cached
//       temporary-token case is also run in rounds alternating with (b)'s
//       SQLite verification, and the cached mark lookup on its own.
//   (k) only the cached temporary-token cases of (r) and the cached mark
//       lookup on its own, for a profiler:
//       `perf record --call-graph dwarf build/token_verify 5 k`.
//
// Goal: at least 1,000,000 verifications per second per core for (b), on
// either store.
//
// Built with the tree (target token_verify). Run from anywhere:
//
//   build/token_verify [seconds per round, default 0.5] [cases, default abcp]
//
// e.g. `token_verify 5 b` runs only the (b) cases, for a profiler.
// Works in a fresh temporary folder (secrets file and tokens.db), removed
// afterwards. The store holds 10,000 other pairs' revocation marks and
// permanent tokens, and the measured pair has a mark older than its token,
// so every lookup finds a row. Prints one line per case: the median of five
// rounds, and the best round.
#include <signal.h>
#include <sodium.h>
#include <spawn.h>
#include <sqlite3.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "common/base64.h"
#include "tokens/mac.h"
#include "tokens/pair_hash.h"
#include "tokens/pair_hash_fast.h"
#include "tokens/redis_token_store.h"
#include "tokens/secret_rings.h"
#include "tokens/sqlite_token_store.h"
#include "tokens/token_authority.h"
#include "tokens/token_format.h"
#include "tokens/token_scan.h"

namespace {

using namespace stokend;
using namespace stokend::tokens;
using Seconds = std::chrono::duration<double>;

// Runs body in batches for `rounds` rounds of `duration` seconds each;
// returns the calls per second of each round, sorted. The machine is shared
// and virtual: single rounds vary by a third, so the median and the best
// round are reported.
std::vector<double> per_second(double duration, const std::function<bool()>& body) {
  constexpr int rounds = 5;
  constexpr int batch = 1000;
  std::vector<double> rates;
  for (int round = 0; round < rounds; ++round) {
    const auto start = std::chrono::steady_clock::now();
    std::uint64_t calls = 0;
    double elapsed = 0;
    do {
      for (int i = 0; i < batch; ++i) {
        if (!body()) {
          std::fprintf(stderr, "token_verify: a verification failed\n");
          std::exit(1);
        }
      }
      calls += batch;
      elapsed = Seconds(std::chrono::steady_clock::now() - start).count();
    } while (elapsed < duration);
    rates.push_back(static_cast<double>(calls) / elapsed);
  }
  std::sort(rates.begin(), rates.end());
  return rates;
}

// Two bodies in alternating rounds (first, second, first...): the virtual
// CPU's speed drifts within seconds, and a comparison of two stores measured
// one after the other showed the drift as much as the stores.
std::pair<std::vector<double>, std::vector<double>> per_second_alternating(
    double duration, const std::function<bool()>& first, const std::function<bool()>& second) {
  std::vector<double> first_rates;
  std::vector<double> second_rates;
  for (int round = 0; round < 5; ++round) {
    for (auto [body, rates] :
         {std::pair{&first, &first_rates}, std::pair{&second, &second_rates}}) {
      const std::vector<double> one = per_second(duration / 5, *body);
      rates->insert(rates->end(), one.begin(), one.end());
    }
  }
  std::sort(first_rates.begin(), first_rates.end());
  std::sort(second_rates.begin(), second_rates.end());
  return {first_rates, second_rates};
}

void report(const char* name, const std::vector<double>& rates) {
  const double median = rates[rates.size() / 2];
  std::printf("%-58s %10.0f /s (%6.3f us)  best %10.0f /s\n", name, median, 1e6 / median,
              rates.back());
  std::fflush(stdout);
}

// The (r) cases: a private redis-server in folder, stopped at the end.
// `only_cached`: the cached temporary-token case alone (case k, for a
// profiler: nothing else of the run in the samples).
// `sqlite_temporary`: (b)'s verification, measured again in rounds
// alternating with the cached Redis store's.
void redis_cases(const std::filesystem::path& folder, const SecretRings& rings, double duration,
                 bool only_cached, const std::function<bool()>& sqlite_temporary) {
  const char* binary = "/usr/bin/redis-server";
  if (::access(binary, X_OK) != 0) {
    std::printf("(r) skipped: %s is not installed\n", binary);
    return;
  }
  const std::string socket = (folder / "redis.sock").string();
  const std::string dir = folder.string();
  std::vector<std::string> words = {binary,
                                    "--port",
                                    "0",
                                    "--unixsocket",
                                    socket,
                                    "--dir",
                                    dir,
                                    "--appendonly",
                                    "yes",
                                    "--appendfsync",
                                    "always",
                                    "--save",
                                    "",
                                    "--daemonize",
                                    "no",
                                    "--logfile",
                                    (folder / "redis.log").string()};
  std::vector<char*> argv;
  for (auto& word : words) argv.push_back(word.data());
  argv.push_back(nullptr);
  pid_t pid = 0;
  if (::posix_spawn(&pid, binary, nullptr, nullptr, argv.data(), environ) != 0) {
    throw std::runtime_error("cannot start redis-server");
  }
  struct Stop {
    pid_t pid;
    ~Stop() {
      ::kill(pid, SIGTERM);
      ::waitpid(pid, nullptr, 0);
    }
  } stop{pid};
  RedisTokenStore::Options options;
  options.connection.endpoint = parse_redis_url("unix:" + socket).endpoint;
  RedisTokenStore node1_store(options);  // no cache: node 1 only writes
  RedisTokenStore uncached_store(options);
  options.verification_cache = true;  // as the daemon opens it
  RedisTokenStore node2_store(options);
  for (int attempt = 0;; ++attempt) {
    try {
      node1_store.ping();
      if (!node2_store.verification_cache()->live()) throw TokenStoreError("not subscribed yet");
      break;
    } catch (const TokenStoreError&) {
      if (attempt == 100) throw;
      ::usleep(100000);
    }
  }
  std::int64_t clock = TokenAuthority::system_clock();
  TokenAuthority node1(rings, node1_store, TokenPolicy{}, [&] { return clock; });
  TokenAuthority node2(rings, node2_store, TokenPolicy{}, [&] { return clock; });
  TokenAuthority uncached(rings, uncached_store, TokenPolicy{}, [&] { return clock; });
  const std::string remote = "bob@b.test";
  const std::string local = "alice@a.test";
  node1.revoke(remote, local);
  ++clock;
  const std::string temporary = node1.mint_temporary(remote, local);
  const std::string permanent = node1.renew_permanent(remote, local);
  report("(r) verify temporary token, Redis store, cached",
         per_second(duration, [&] { return node2.verify(temporary, remote, local).valid(); }));
  {
    const auto [sqlite_rates, redis_rates] = per_second_alternating(
        duration, sqlite_temporary, [&] { return node2.verify(temporary, remote, local).valid(); });
    report("(r) verify temporary token, SQLite store, alternating", sqlite_rates);
    report("(r) verify temporary token, Redis store, cached, alternating", redis_rates);
  }
  // The cache's own share of that, as (p) measures the SQLite store's.
  const std::string hash = base64_unpadded(pair_hash(remote, local));
  report("(r) part: revocation_mark() lookup, Redis store cache",
         per_second(duration, [&] { return node2_store.revocation_mark(hash).has_value(); }));
  if (only_cached) return;
  report("(r) verify permanent token, Redis store, cached",
         per_second(duration, [&] { return node2.verify(permanent, remote, local).valid(); }));
  report("(r) verify temporary token, Redis store, no cache",
         per_second(duration, [&] { return uncached.verify(temporary, remote, local).valid(); }));
  report("(r) verify permanent token, Redis store, no cache",
         per_second(duration, [&] { return uncached.verify(permanent, remote, local).valid(); }));
  // Revocation propagation: the clock moves a second per round so that each
  // round's token is newer than the last mark, and each revocation kills it.
  std::vector<double> micros;
  for (int round = 0; round < 200; ++round) {
    ++clock;
    const std::string token = node1.mint_temporary(remote, local);
    if (!node2.verify(token, remote, local).valid()) throw std::runtime_error("not valid");
    ++clock;
    const auto start = std::chrono::steady_clock::now();
    node1.revoke(remote, local);
    while (node2.verify(token, remote, local).valid()) {
    }
    micros.push_back(
        std::chrono::duration<double, std::micro>(std::chrono::steady_clock::now() - start)
            .count());
  }
  std::sort(micros.begin(), micros.end());
  std::printf("%-58s p50 %8.0f us  p99 %8.0f us  (200 revocations)\n",
              "(r) revoke on node 1 until node 2 (cached) refuses", micros[micros.size() / 2],
              micros[micros.size() * 99 / 100]);
  std::fflush(stdout);
}

}  // namespace

int main(int argc, char** argv) {
  const double duration = argc > 1 ? std::atof(argv[1]) : 0.5;
  const std::string cases = argc > 2 ? argv[2] : "abcp";
  const auto wanted = [&](char letter) { return cases.find(letter) != std::string::npos; };
  if (sodium_init() < 0 || duration <= 0) return 1;

  std::string pattern =
      (std::filesystem::temp_directory_path() / "stokend-token-verify-XXXXXX").string();
  if (::mkdtemp(pattern.data()) == nullptr) return 1;
  const std::filesystem::path folder = pattern;

  int status = 0;
  try {
    const std::int64_t now = TokenAuthority::system_clock();
    const SecretRings rings = SecretRings::load_or_create((folder / "token-secrets").string(), now);
    SqliteTokenStore store(folder / "tokens.db");
    TokenAuthority authority(rings, store, TokenPolicy{});

    // Other pairs' rows, so lookups search a populated table: written in one
    // transaction on a connection of its own (through the store, each row
    // would be an fsynced commit).
    {
      sqlite3* raw = nullptr;
      if (sqlite3_open((folder / "tokens.db").c_str(), &raw) != SQLITE_OK) return 1;
      const std::unique_ptr<sqlite3, int (*)(sqlite3*)> filler(raw, sqlite3_close);
      std::string sql = "BEGIN;";
      for (int i = 0; i < 10000; ++i) {
        const std::string hash =
            base64_unpadded(pair_hash("remote" + std::to_string(i) + "@b.test", "alice@a.test"));
        sql += "INSERT INTO revocation VALUES('" + hash + "', " + std::to_string(now - 3600) +
               ");INSERT INTO issued VALUES('1-created:" + std::to_string(now) + "-other-" +
               std::to_string(i) + "', 'alice@a.test', 'remote" + std::to_string(i) +
               "@b.test', '" + hash + "', " + std::to_string(now) + ", " +
               std::to_string(now + 3600) + ");";
      }
      sql += "COMMIT;";
      if (sqlite3_exec(filler.get(), sql.c_str(), nullptr, nullptr, nullptr) != SQLITE_OK) {
        std::fprintf(stderr, "token_verify: %s\n", sqlite3_errmsg(filler.get()));
        return 1;
      }
    }

    const std::string remote = "bob@b.test";
    const std::string local = "alice@a.test";
    authority.revoke(remote, local);  // a mark for the pair, older than the tokens below
    const std::string temporary = authority.mint_temporary(remote, local);
    const std::string permanent = authority.renew_permanent(remote, local);
    std::printf("temporary token: %s\n", temporary.c_str());
    if (!authority.verify(temporary, remote, local).valid() ||
        !authority.verify(permanent, remote, local).valid()) {
      std::fprintf(stderr, "token_verify: the minted tokens do not verify\n");
      return 1;
    }

    const ParsedToken parsed = *parse_named_token(temporary).token;
    const std::string signed_part = temporary.substr(0, parsed.signed_length);
    const MacValue mac = *decode_base64_32(parsed.fields.secret);
    const Secret& secret = *rings.snapshot()->find(*parsed.fields.option("keyid"));
    const HmacSha256Key key(secret.key);

    if (wanted('a')) {
      report("(a) MAC check only, OpenSSL SHA-256 (used)",
             per_second(duration, [&] { return key.verify(signed_part, mac); }));
      report("(a) MAC check only, libsodium crypto_auth_hmacsha256", per_second(duration, [&] {
               crypto_auth_hmacsha256_state state;
               crypto_auth_hmacsha256_init(&state, secret.key.data(), secret.key.size());
               crypto_auth_hmacsha256_update(
                   &state, reinterpret_cast<const unsigned char*>(signed_part.data()),
                   signed_part.size());
               MacValue computed{};
               crypto_auth_hmacsha256_final(&state, computed.data());
               return sodium_memcmp(computed.data(), mac.data(), mac.size()) == 0;
             }));
      report("(a) MAC check only, libsodium, keyed state precomputed", [&] {
        crypto_auth_hmacsha256_state keyed;
        crypto_auth_hmacsha256_init(&keyed, secret.key.data(), secret.key.size());
        return per_second(duration, [&] {
          crypto_auth_hmacsha256_state state = keyed;
          crypto_auth_hmacsha256_update(&state,
                                        reinterpret_cast<const unsigned char*>(signed_part.data()),
                                        signed_part.size());
          MacValue computed{};
          crypto_auth_hmacsha256_final(&state, computed.data());
          return sodium_memcmp(computed.data(), mac.data(), mac.size()) == 0;
        });
      }());
    }
    if (wanted('b')) {
      report("(b) verify temporary token, SQLite store (mark lookup)", per_second(duration, [&] {
               return authority.verify(temporary, remote, local).valid();
             }));
      report("(b) verify_unbound temporary token (no pair hash)",
             per_second(duration, [&] { return authority.verify_unbound(temporary).valid(); }));
      {
        SqliteTokenStore::Options every_call;
        every_call.change_check_interval = std::chrono::milliseconds(0);
        SqliteTokenStore checking_store(folder / "tokens.db", every_call);
        TokenAuthority checking_authority(rings, checking_store, TokenPolicy{});
        report("(b) verify temporary token, data_version on every call", per_second(duration, [&] {
                 return checking_authority.verify(temporary, remote, local).valid();
               }));
      }
    }
    if (wanted('p')) {
      const std::string hash = base64_unpadded(pair_hash(remote, local));
      report("(p) part: scan_named_token (parse in place)", per_second(duration, [&] {
               NamedTokenScan scan;
               return scan_named_token(temporary, scan).empty();
             }));
      report("(p) part: parse_named_token (fields copied out)",
             per_second(duration, [&] { return parse_named_token(temporary).token.has_value(); }));
      report("(p) part: pair_hash() of pair_hash.cc (EVP_Digest)",
             per_second(duration, [&] { return pair_hash(remote, local)[0] != 0 || true; }));
      report("(p) part: pair_hash_fast() (verification path)",
             per_second(duration, [&] { return pair_hash_fast(remote, local)[0] != 0 || true; }));
      report("(p) part: revocation_mark() lookup, SQLite store cache",
             per_second(duration, [&] { return store.revocation_mark(hash).has_value(); }));
    }
    if (wanted('r') || wanted('k')) {
      redis_cases(folder, rings, duration, !wanted('r'),
                  [&] { return authority.verify(temporary, remote, local).valid(); });
    }
    if (wanted('c')) {
      report("(c) verify permanent token, SQLite store (issued lookup)", per_second(duration, [&] {
               return authority.verify(permanent, remote, local).valid();
             }));
    }
  } catch (const std::exception& error) {
    std::fprintf(stderr, "token_verify: %s\n", error.what());
    status = 1;
  }
  std::error_code ignored;
  std::filesystem::remove_all(folder, ignored);
  return status;
}
