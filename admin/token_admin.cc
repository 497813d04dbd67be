// stokenctl's secrets and token commands; see token_admin.h.
#include "admin/token_admin.h"

#include <algorithm>
#include <exception>
#include <filesystem>

#include "message/address.h"
#include "mta/store/token_store_setup.h"
#include "mta/users.h"
#include "tokens/pair_hash.h"
#include "tokens/redis_url.h"
#include "tokens/secret_rings.h"
#include "tokens/time_text.h"
#include "tokens/token_authority.h"
#include "tokens/token_format.h"

namespace stokend::admin {
namespace {

using tokens::TokenKind;

constexpr int exit_success = 0;
constexpr int exit_failure = 1;

std::optional<TokenKind> parse_kind(const std::string& word) {
  if (word == "temp") return TokenKind::temporary;
  if (word == "perm") return TokenKind::permanent;
  return std::nullopt;
}

std::string kind_in_words(TokenKind kind) {
  return kind == TokenKind::temporary ? "temporary" : "permanent";
}

// "2026-11-18T11:06:40Z (1795000000)"
std::string time_with_seconds(std::int64_t unix_seconds) {
  return tokens::iso8601_utc(unix_seconds) + " (" + std::to_string(unix_seconds) + ")";
}

// The address normalised as the daemon does for MAIL FROM and RCPT TO, or
// nullopt when it is not an address.
std::optional<std::string> normalized_address(const std::string& text) {
  const auto mailbox = message::parse_mailbox(text);
  if (!mailbox || mailbox->domain.empty()) return std::nullopt;
  return tokens::normalize_address(mailbox->to_string());
}

// Prints rows as columns separated by two spaces; the last column is not
// padded (tokens are long).
void print_table(std::ostream& out, const std::vector<std::vector<std::string>>& rows) {
  std::vector<std::size_t> widths;
  for (const auto& row : rows) {
    widths.resize(std::max(widths.size(), row.size()));
    for (std::size_t column = 0; column < row.size(); ++column) {
      widths[column] = std::max(widths[column], row[column].size());
    }
  }
  for (const auto& row : rows) {
    std::string line;
    for (std::size_t column = 0; column < row.size(); ++column) {
      line += row[column];
      if (column + 1 < row.size())
        line += std::string(widths[column] - row[column].size() + 2, ' ');
    }
    out << line << '\n';
  }
}

int fail(std::ostream& err, const std::string& message) {
  err << "stokenctl: " << message << '\n';
  return exit_failure;
}

// The secrets, with when each stopped being active: when the next secret
// of its ring was created (nullopt for the active one).
struct SecretState {
  const tokens::Secret* secret;
  std::optional<std::int64_t> retired;
};
std::vector<SecretState> secret_states(const tokens::SecretRings::Snapshot& snapshot) {
  std::vector<SecretState> states;
  for (const tokens::Secret& secret : snapshot.secrets) {
    std::optional<std::int64_t> retired;
    if (&snapshot.active(secret.kind) != &secret) {
      // The earliest later activation in its ring: created later, or as
      // old but further down the file.
      bool after = false;
      for (const tokens::Secret& other : snapshot.secrets) {
        if (&other == &secret) {
          after = true;
          continue;
        }
        if (other.kind != secret.kind) continue;
        const bool later =
            other.created > secret.created || (after && other.created == secret.created);
        if (later && (!retired || other.created < *retired)) retired = other.created;
      }
    }
    states.push_back(SecretState{&secret, retired});
  }
  return states;
}

int rotate_secrets(const Config& config, const std::vector<std::string>& words, std::ostream& out,
                   std::ostream& err) {
  const std::string path = config.tokens.secrets_file.string();
  const std::optional<TokenKind> ring =
      words.size() > 2 ? parse_kind(words[2]) : std::optional<TokenKind>();
  const std::int64_t now = tokens::TokenAuthority::system_clock();
  const auto keep_temporary = config.tokens.temporary_validity + config.tokens.clock_skew;
  const auto keep_permanent = config.tokens.permanent_validity + config.tokens.clock_skew;
  // Created when missing (stokend has never run): rotating then still gives
  // a fresh secret per ring to mint with.
  const auto before = tokens::SecretRings::load_or_create(path, now).snapshot();
  const std::vector<std::string> new_ids =
      tokens::SecretRings::rotate(path, ring, now, keep_temporary, keep_permanent);
  const auto after = tokens::SecretRings::load(path).snapshot();

  for (const std::string& id : new_ids) {
    const tokens::Secret* secret = after->find(id);
    out << id << '\n';
    err << "new active " << tokens::kind_name(secret->kind) << " secret " << id << '\n';
  }
  for (const tokens::Secret& old : before->secrets) {
    if (after->find(old.id) == nullptr) {
      err << "dropped " << tokens::kind_name(old.kind) << " secret " << old.id
          << " (retired longer than its tokens can live)\n";
    }
  }
  err << "retired secrets keep verifying the tokens they made, for "
      << tokens::duration_in_words(keep_temporary.count()) << " (temp) or "
      << tokens::duration_in_words(keep_permanent.count()) << " (perm)\n"
      << "a running stokend picks up " << path << " by itself\n";
  return exit_success;
}

int list_secrets(const Config& config, std::ostream& out, std::ostream& err) {
  const std::string path = config.tokens.secrets_file.string();
  if (!std::filesystem::exists(path)) {
    return fail(err, path + " does not exist yet (stokend creates it on first start, " +
                         "stokenctl secrets rotate too)");
  }
  const auto snapshot = tokens::SecretRings::load(path).snapshot();
  std::vector<std::vector<std::string>> rows = {{"ID", "RING", "CREATED", "STATE"}};
  for (const SecretState& state : secret_states(*snapshot)) {
    rows.push_back({state.secret->id, std::string(tokens::kind_name(state.secret->kind)),
                    tokens::iso8601_utc(state.secret->created),
                    state.retired ? "retired " + tokens::iso8601_utc(*state.retired) : "active"});
  }
  print_table(out, rows);
  return exit_success;
}

// The daemon's pieces, opened for one command. The store is opened as the
// daemon opens it (mta/store/token_store_setup.h), so that a token changed here
// reaches the user's COI/Contacts folder too.
struct Tokens {
  tokens::SecretRings rings;
  std::unique_ptr<tokens::TokenStore> store;
  tokens::TokenAuthority authority;

  explicit Tokens(const Config& config, bool create_secrets)
      : rings(create_secrets
                  ? tokens::SecretRings::load_or_create(config.tokens.secrets_file.string(),
                                                        tokens::TokenAuthority::system_clock())
                  : tokens::SecretRings::load(config.tokens.secrets_file.string())),
        store(open_token_store(config)),
        authority(rings, *store, token_policy_of(config)) {}
};

int new_token(const Config& config, const std::vector<std::string>& words, std::ostream& out,
              std::ostream& err) {
  const TokenKind kind = *parse_kind(words[2]);
  const auto remote = normalized_address(words[3]);
  if (!remote) return fail(err, "'" + words[3] + "' is not a valid address (REMOTE)");
  const auto local = normalized_address(words[4]);
  if (!local) return fail(err, "'" + words[4] + "' is not a valid address (LOCAL)");
  UserDirectory users(config.users_file);
  if (const auto error = users.load()) return fail(err, *error);
  if (users.find(*local) == nullptr) {
    return fail(err, *local + " is not a user in " + config.users_file.string() +
                         " (add it with stokenctl user add)");
  }
  Tokens opened(config, true);
  const std::string token = kind == TokenKind::temporary
                                ? opened.authority.mint_temporary(*remote, *local)
                                : opened.authority.renew_permanent(*remote, *local);
  const tokens::TokenCheck check = opened.authority.verify(token, *remote, *local);
  out << token << '\n';
  err << kind_in_words(kind) << " token for " << *remote << " to deliver to " << *local
      << ", valid until " << tokens::iso8601_utc(check.expires)
      << (kind == TokenKind::permanent ? " (stored in " + token_store_description(config) + ")"
                                       : "")
      << '\n';
  return exit_success;
}

int revoke_tokens(const Config& config, const std::vector<std::string>& words, std::ostream& err) {
  const auto remote = normalized_address(words[2]);
  if (!remote) return fail(err, "'" + words[2] + "' is not a valid address (REMOTE)");
  const auto local = normalized_address(words[3]);
  if (!local) return fail(err, "'" + words[3] + "' is not a valid address (LOCAL)");
  Tokens opened(config, true);
  const std::string hash = tokens::base64_unpadded(tokens::pair_hash(*remote, *local));
  std::size_t permanent = 0;
  for (const tokens::IssuedToken& issued : opened.store->list_issued(*local)) {
    if (issued.pair_hash == hash) ++permanent;
  }
  opened.authority.revoke(*remote, *local);
  const auto mark = opened.store->revocation_mark(hash);
  err << "revoked the tokens of " << *remote << " for " << *local << ": " << permanent
      << " permanent token" << (permanent == 1 ? "" : "s") << " deleted; temporary tokens created "
      << "up to " << time_with_seconds(mark.value_or(0)) << " are no longer valid\n";
  return exit_success;
}

std::string verdict_in_words(tokens::TokenVerdict verdict) {
  std::string words(tokens::verdict_name(verdict));
  std::replace(words.begin(), words.end(), '_', ' ');
  return words;
}

using Rows = std::vector<std::vector<std::string>>;

void add_lifetime(Rows& rows, std::int64_t created, std::int64_t validity) {
  rows.push_back({"created", time_with_seconds(created)});
  rows.push_back(
      {"validity", std::to_string(validity) + " s (" + tokens::duration_in_words(validity) + ")"});
  rows.push_back({"expires", time_with_seconds(created + validity)});
}

int inspect_positional(const tokens::PositionalToken& token, std::ostream& out) {
  Rows rows = {{"format", "positional (1-<b64>-<b64>-<hex created>-<hex validity>)"},
               {"version", "1"},
               {"field 2", tokens::base64_unpadded(token.first)},
               {"field 3", tokens::base64_unpadded(token.second)}};
  add_lifetime(rows, token.created, token.validity);
  rows.push_back({"verdict", "cannot verify: issued by another server format"});
  print_table(out, rows);
  return exit_failure;
}

int inspect_token(const Config& config, const std::string& token, const PairOptions& pair,
                  std::ostream& out, std::ostream& err) {
  std::optional<std::string> remote;
  std::optional<std::string> local;
  if (pair.remote) {
    remote = normalized_address(*pair.remote);
    if (!remote) return fail(err, "'" + *pair.remote + "' is not a valid address (--remote)");
    local = normalized_address(*pair.local);
    if (!local) return fail(err, "'" + *pair.local + "' is not a valid address (--local)");
  }
  const tokens::TokenParseResult parsed = tokens::parse_named_token(token);
  if (!parsed.token) {
    if (const auto positional = tokens::parse_positional_token(token); positional.token) {
      return inspect_positional(*positional.token, out);
    }
    print_table(out, {{"verdict", "malformed"}, {"reason", parsed.error}});
    return exit_failure;
  }
  const tokens::TokenFields& fields = parsed.token->fields;
  Rows rows = {{"format", "named (1-created:...-validity:...-hash:...-secret:...)"},
               {"version", "1"}};
  add_lifetime(rows, fields.created, fields.validity);
  rows.push_back({"hash", fields.hash});

  std::optional<tokens::SecretRings> rings;
  std::string rings_error;
  try {
    rings.emplace(tokens::SecretRings::load(config.tokens.secrets_file.string()));
  } catch (const std::exception& error) {
    rings_error = error.what();
  }
  for (const auto& [key, value] : fields.options) {
    std::string text = value;
    if (key == "keyid" && rings) {
      const tokens::Secret* secret = rings->snapshot()->find(value);
      text += secret != nullptr ? " (" + std::string(tokens::kind_name(secret->kind)) + " ring)"
                                : " (not in " + config.tokens.secrets_file.string() + ")";
    }
    rows.push_back({key, text});
  }
  if (fields.option("keyid") == nullptr) rows.push_back({"keyid", "none: not made by stokend"});
  rows.push_back({"secret", fields.secret});

  if (!rings) {
    rows.push_back({"verdict", "cannot verify: " + rings_error});
    print_table(out, rows);
    return exit_failure;
  }
  const std::unique_ptr<tokens::TokenStore> store = open_backend_token_store(config);
  const tokens::TokenAuthority authority(*rings, *store, token_policy_of(config));
  tokens::TokenCheck check;
  if (remote) {
    check = authority.verify(token, *remote, *local);
    rows.push_back({"pair", *remote + " -> " + *local});
  } else {
    check = authority.verify_unbound(token);
    rows.push_back({"pair", "not checked (give --remote and --local)"});
  }
  if (check.kind) rows.push_back({"kind", kind_in_words(*check.kind)});
  rows.push_back({"verdict", verdict_in_words(check.verdict)});
  if (check.valid()) {
    rows.push_back({"reason", "expires in " +
                                  tokens::duration_in_words(check.expires - authority.now()) +
                                  (check.renew_due ? ", due for renewal" : "")});
  } else {
    rows.push_back({"reason", check.reason});
  }
  print_table(out, rows);
  return check.valid() ? exit_success : exit_failure;
}

std::string expires_column(std::int64_t expires, std::int64_t now) {
  return tokens::iso8601_utc(expires) + (expires <= now ? " (expired)" : "");
}

int list_tokens(const Config& config, const std::vector<std::string>& words, std::ostream& out,
                std::ostream& err) {
  std::string kind;
  std::string user;
  for (std::size_t i = 2; i < words.size(); ++i) {
    if (i == 2 && (words[i] == "issued" || words[i] == "wallet")) {
      kind = words[i];
    } else {
      user = tokens::normalize_address(words[i]);
    }
  }
  const std::unique_ptr<tokens::TokenStore> opened = open_backend_token_store(config);
  tokens::TokenStore& store = *opened;
  const std::int64_t now = tokens::TokenAuthority::system_clock();
  const std::string whose = user.empty() ? "" : " of " + user;
  if (kind.empty() || kind == "issued") {
    const auto issued = store.list_issued(user);
    if (issued.empty()) {
      err << "no issued permanent tokens" << whose << '\n';
    } else {
      if (kind.empty()) out << "issued (permanent tokens this server gave out):\n";
      std::vector<std::vector<std::string>> rows = {
          {"LOCAL", "REMOTE", "CREATED", "EXPIRES", "TOKEN"}};
      for (const tokens::IssuedToken& token : issued) {
        rows.push_back({token.local_address, token.remote_address,
                        tokens::iso8601_utc(token.created), expires_column(token.expires, now),
                        token.token});
      }
      print_table(out, rows);
    }
  }
  if (kind.empty() || kind == "wallet") {
    const auto wallet = store.list_wallet(user);
    if (wallet.empty()) {
      err << "no wallet tokens" << whose << '\n';
    } else {
      if (kind.empty()) out << "wallet (tokens other servers gave local users):\n";
      std::vector<std::vector<std::string>> rows = {
          {"LOCAL", "REMOTE", "KIND", "SOURCE", "CREATED", "EXPIRES", "TOKEN"}};
      for (const tokens::WalletToken& token : wallet) {
        rows.push_back({token.local_address, token.remote_address,
                        token.permanent ? "perm" : "temp", token.source,
                        tokens::iso8601_utc(token.created), expires_column(token.expires, now),
                        token.token});
      }
      print_table(out, rows);
    }
  }
  return exit_success;
}

// token migrate --to redis URL | --to sqlite PATH: copies every issued
// token, wallet entry and revocation mark of the configured store into the
// other one. The target keeps what it has; the store's own rules decide
// conflicts (the later mark, the newer wallet token), so running it twice,
// or into a store another node already uses, loses nothing. Marks cannot be
// listed through the TokenStore interface, so the pairs of the issued and
// wallet tokens are the ones whose marks are copied; expired rows are left
// behind.
int migrate_tokens(const Config& config, const std::vector<std::string>& words, std::ostream& out,
                   std::ostream& err) {
  Config target_config = config;
  target_config.tokens.sync_contacts_folder = false;
  if (words[3] == "redis") {
    target_config.tokens.store_backend = TokenStoreBackend::redis;
    target_config.tokens.redis.url = words[4];
    const auto parsed = tokens::parse_redis_url(words[4]);
    if (!parsed.error.empty()) return fail(err, words[4] + ": " + parsed.error);
  } else {
    target_config.tokens.store_backend = TokenStoreBackend::sqlite;
    target_config.tokens.store = words[4];
  }
  const std::string from = token_store_description(config);
  const std::string to = token_store_description(target_config);
  if (from == to) return fail(err, "the target is the configured store itself (" + from + ")");
  const std::unique_ptr<tokens::TokenStore> source = open_backend_token_store(config);
  const std::unique_ptr<tokens::TokenStore> target = open_backend_token_store(target_config);
  const std::int64_t now = tokens::TokenAuthority::system_clock();
  std::size_t issued = 0;
  std::size_t wallet = 0;
  std::size_t marks = 0;
  std::vector<std::string> pairs;
  for (const tokens::IssuedToken& token : source->list_issued("")) {
    pairs.push_back(token.pair_hash);
    if (token.expires <= now) continue;
    target->add_issued(token);
    ++issued;
  }
  for (const tokens::WalletToken& token : source->list_wallet("")) {
    pairs.push_back(token.pair_hash);
    if (token.expires <= now) continue;
    target->put_wallet(token);
    ++wallet;
  }
  std::sort(pairs.begin(), pairs.end());
  pairs.erase(std::unique(pairs.begin(), pairs.end()), pairs.end());
  for (const std::string& pair : pairs) {
    if (const auto mark = source->revocation_mark(pair)) {
      target->set_revocation_mark(pair, *mark);
      ++marks;
    }
  }
  out << "migrated " << issued << " issued tokens, " << wallet << " wallet tokens and " << marks
      << " revocation marks from " << from << " to " << to << '\n';
  return exit_success;
}

}  // namespace

std::optional<std::string> check_secrets_command(const std::vector<std::string>& words) {
  if (words.size() < 2) return "'secrets' needs a subcommand: rotate or list";
  const std::string& subcommand = words[1];
  const std::size_t arguments = words.size() - 2;
  if (subcommand == "rotate") {
    if (arguments > 1) return "secrets rotate takes at most one ring: temp or perm";
    if (arguments == 1 && !parse_kind(words[2])) {
      return "the ring must be temp or perm, not '" + words[2] + "'";
    }
    return std::nullopt;
  }
  if (subcommand == "list") {
    if (arguments != 0) return "secrets list takes no arguments";
    return std::nullopt;
  }
  return "unknown subcommand 'secrets " + subcommand + "'";
}

std::optional<std::string> check_token_command(const std::vector<std::string>& words,
                                               const PairOptions& pair) {
  if (words.size() < 2) {
    return "'token' needs a subcommand: new, revoke, inspect, list or migrate";
  }
  const std::string& subcommand = words[1];
  const std::size_t arguments = words.size() - 2;
  if ((pair.remote || pair.local) && subcommand != "inspect") {
    return "--remote and --local go with token inspect only";
  }
  if (subcommand == "new") {
    if (arguments != 3) return "usage: token new temp|perm REMOTE LOCAL";
    if (!parse_kind(words[2])) return "the kind must be temp or perm, not '" + words[2] + "'";
  } else if (subcommand == "revoke") {
    if (arguments != 2) return "usage: token revoke REMOTE LOCAL";
  } else if (subcommand == "inspect") {
    if (arguments != 1) return "usage: token inspect TOKEN [--remote REMOTE --local LOCAL]";
    if (pair.remote.has_value() != pair.local.has_value()) {
      return "--remote and --local go together";
    }
  } else if (subcommand == "migrate") {
    if (arguments != 3 || words[2] != "--to" || (words[3] != "redis" && words[3] != "sqlite")) {
      return "usage: token migrate --to redis URL | --to sqlite PATH";
    }
  } else if (subcommand == "list") {
    if (arguments > 2) return "usage: token list [issued|wallet] [USER]";
    if (arguments == 2 && words[2] != "issued" && words[2] != "wallet") {
      return "token list: the kind must be issued or wallet, not '" + words[2] + "'";
    }
  } else {
    return "unknown subcommand 'token " + subcommand + "'";
  }
  return std::nullopt;
}

int run_secrets_command(const Config& config, const std::vector<std::string>& words,
                        std::ostream& out, std::ostream& err) {
  try {
    if (words[1] == "rotate") return rotate_secrets(config, words, out, err);
    return list_secrets(config, out, err);
  } catch (const std::exception& error) {
    return fail(err, error.what());
  }
}

int run_token_command(const Config& config, const std::vector<std::string>& words,
                      const PairOptions& pair, std::ostream& out, std::ostream& err) {
  try {
    const std::string& subcommand = words[1];
    if (subcommand == "new") return new_token(config, words, out, err);
    if (subcommand == "revoke") return revoke_tokens(config, words, err);
    if (subcommand == "inspect") return inspect_token(config, words[2], pair, out, err);
    if (subcommand == "migrate") return migrate_tokens(config, words, out, err);
    return list_tokens(config, words, out, err);
  } catch (const std::exception& error) {
    return fail(err, error.what());
  }
}

}  // namespace stokend::admin
