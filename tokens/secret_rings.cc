// Loading, creating and rotating the token secrets file; see secret_rings.h.
//
// Every change (creation, rotation) happens under an exclusive flock on
// "<file>.lock" and reads the file again under the lock, so that two
// stokenctl runs, or stokenctl and a starting daemon, cannot lose each
// other's secrets. The file itself is replaced with durable::replace_file,
// so a reader sees either the old or the new file, never half of one.
#include "tokens/secret_rings.h"

#include <fcntl.h>
#include <sodium.h>
#include <spdlog/spdlog.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <charconv>
#include <cstring>
#include <filesystem>
#include <map>
#include <mutex>

#include "common/base64.h"
#include "common/durable_file.h"
#include "common/unique_fd.h"
#include "tokens/pair_hash.h"

namespace stokend::tokens {
namespace {

// A secrets file holds a handful of lines; anything this large is not one.
constexpr std::size_t max_file_size = 1 << 20;
constexpr std::size_t max_id_length = 32;

struct FileIdentity {
  std::int64_t mtime_ns = 0;
  std::int64_t size = 0;
  std::uint64_t inode = 0;
  bool operator==(const FileIdentity&) const = default;
};

FileIdentity identity_of(const struct stat& status) {
  return FileIdentity{
      static_cast<std::int64_t>(status.st_mtim.tv_sec) * 1'000'000'000 + status.st_mtim.tv_nsec,
      static_cast<std::int64_t>(status.st_size), static_cast<std::uint64_t>(status.st_ino)};
}

struct LoadedFile {
  SecretRings::Snapshot snapshot;
  FileIdentity identity;
};

}  // namespace

struct SecretRings::RefreshState {
  std::mutex mutex;
  FileIdentity loaded;  // of the file as last read
  std::chrono::steady_clock::time_point last_check;
};

namespace {

std::string system_error_text(int error_number) { return std::strerror(error_number); }

std::string octal_mode(mode_t mode) {
  std::array<char, 8> text{};
  std::snprintf(text.data(), text.size(), "%04o", static_cast<unsigned>(mode & 07777));
  return text.data();
}

bool valid_id(std::string_view id) {
  return !id.empty() && id.size() <= max_id_length && std::all_of(id.begin(), id.end(), [](char c) {
    return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9');
  });
}

std::vector<std::string_view> split_words(std::string_view line) {
  std::vector<std::string_view> words;
  std::size_t position = 0;
  while (position < line.size()) {
    while (position < line.size() && (line[position] == ' ' || line[position] == '\t')) ++position;
    if (position == line.size()) break;
    const std::size_t start = position;
    while (position < line.size() && line[position] != ' ' && line[position] != '\t') ++position;
    words.push_back(line.substr(start, position - start));
  }
  return words;
}

SecretRings::Snapshot parse_secrets(const std::string& path, std::string_view contents) {
  SecretRings::Snapshot snapshot;
  std::map<std::string, std::size_t, std::less<>> id_lines;
  std::size_t line_number = 0;
  std::size_t start = 0;
  while (start < contents.size()) {
    std::size_t end = contents.find('\n', start);
    if (end == std::string_view::npos) end = contents.size();
    std::string_view line = contents.substr(start, end - start);
    start = end + 1;
    ++line_number;
    if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
    const std::vector<std::string_view> words = split_words(line);
    if (words.empty() || words[0].front() == '#') continue;

    const std::string where = path + ":" + std::to_string(line_number) + ": ";
    if (words.size() != 4) {
      throw SecretFileError(where + "expected '<ring> <id> <created> <base64 key>', got " +
                            std::to_string(words.size()) +
                            (words.size() == 1 ? " word" : " words"));
    }
    Secret secret;
    if (words[0] == "temp") {
      secret.kind = TokenKind::temporary;
    } else if (words[0] == "perm") {
      secret.kind = TokenKind::permanent;
    } else {
      throw SecretFileError(where + "unknown ring '" + std::string(words[0]) +
                            "' (expected temp or perm)");
    }
    if (!valid_id(words[1])) {
      throw SecretFileError(where + "bad id '" + std::string(words[1]) + "' (expected 1-" +
                            std::to_string(max_id_length) + " characters a-z, 0-9)");
    }
    secret.id = words[1];
    const auto [created_end, created_status] =
        std::from_chars(words[2].data(), words[2].data() + words[2].size(), secret.created);
    if (created_status != std::errc() || created_end != words[2].data() + words[2].size() ||
        secret.created <= 0) {
      throw SecretFileError(where + "bad created time '" + std::string(words[2]) +
                            "' (expected unix seconds)");
    }
    auto key = decode_base64_32(words[3]);
    if (!key) key = decode_base64_32(words[3], Base64Padding::required);
    if (!key) throw SecretFileError(where + "bad key (expected 32 octets in base64)");
    secret.key = *key;
    sodium_memzero(key->data(), key->size());
    const auto [first, inserted] = id_lines.emplace(secret.id, line_number);
    if (!inserted) {
      throw SecretFileError(where + "duplicate id '" + secret.id + "' (first on line " +
                            std::to_string(first->second) + ")");
    }
    snapshot.secrets.push_back(std::move(secret));
  }
  for (const TokenKind kind : {TokenKind::temporary, TokenKind::permanent}) {
    if (std::none_of(snapshot.secrets.begin(), snapshot.secrets.end(),
                     [kind](const Secret& secret) { return secret.kind == kind; })) {
      throw SecretFileError(path + ": the " + std::string(kind_name(kind)) +
                            " ring has no secret (each ring needs at least one)");
    }
  }
  return snapshot;
}

// Reads and checks the file. The mode is checked on the open descriptor, so
// the file checked is the file read.
LoadedFile read_secrets_file(const std::string& path) {
  UniqueFd file(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
  if (!file) throw SecretFileError(path + ": cannot open: " + system_error_text(errno));
  struct stat status {};
  if (::fstat(file.get(), &status) != 0) {
    throw SecretFileError(path + ": cannot stat: " + system_error_text(errno));
  }
  if (!S_ISREG(status.st_mode)) throw SecretFileError(path + ": not a regular file");
  const mode_t mode = status.st_mode & 07777;
  if (mode != 0600 && mode != 0400) {
    throw SecretFileError(path + ": mode " + octal_mode(mode) +
                          " is not allowed for the token secrets: only the owner may read the "
                          "file (0600 or 0400; run chmod 600 " +
                          path + ")");
  }
  if (static_cast<std::size_t>(status.st_size) > max_file_size) {
    throw SecretFileError(path + ": too large for a secrets file (" +
                          std::to_string(status.st_size) + " octets)");
  }
  std::string contents;
  std::array<char, 4096> buffer{};
  while (true) {
    const ssize_t count = ::read(file.get(), buffer.data(), buffer.size());
    if (count < 0 && errno == EINTR) continue;
    if (count < 0) throw SecretFileError(path + ": cannot read: " + system_error_text(errno));
    if (count == 0) break;
    contents.append(buffer.data(), static_cast<std::size_t>(count));
    if (contents.size() > max_file_size) throw SecretFileError(path + ": too large");
  }
  LoadedFile loaded{parse_secrets(path, contents), identity_of(status)};
  sodium_memzero(contents.data(), contents.size());
  sodium_memzero(buffer.data(), buffer.size());
  return loaded;
}

// Holds the exclusive lock on "<file>.lock" for its lifetime.
UniqueFd lock_secrets_file(const std::string& path) {
  const std::string lock_path = path + ".lock";
  UniqueFd lock(::open(lock_path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0600));
  if (!lock) throw SecretFileError(lock_path + ": cannot open: " + system_error_text(errno));
  while (::flock(lock.get(), LOCK_EX) != 0) {
    if (errno != EINTR) {
      throw SecretFileError(lock_path + ": cannot lock: " + system_error_text(errno));
    }
  }
  return lock;
}

std::string file_contents(const std::vector<Secret>& secrets) {
  std::string text =
      "# stokend token secrets: <ring> <id> <created unix secs> <base64 32-octet key>\n"
      "# Written by stokend and `stokenctl secrets rotate`. Keep it secret: mode 0600.\n";
  for (const Secret& secret : secrets) {
    text += std::string(kind_name(secret.kind)) + " " + secret.id + " " +
            std::to_string(secret.created) + " " + base64_unpadded(secret.key) + "\n";
  }
  return text;
}

void write_secrets_file(const std::string& path, const std::vector<Secret>& secrets) {
  std::string contents = file_contents(secrets);
  const durable::WriteResult result = durable::replace_file(path, contents, 0600);
  sodium_memzero(contents.data(), contents.size());
  if (!result) {
    throw SecretFileError(path + ": cannot write (" + result.step + "): " + result.error.message());
  }
}

Secret fresh_secret(TokenKind kind, std::string id, std::int64_t created) {
  if (sodium_init() < 0) throw SecretFileError("libsodium cannot be initialised");
  Secret secret{kind, std::move(id), created, {}};
  randombytes_buf(secret.key.data(), secret.key.size());
  return secret;
}

char id_letter(TokenKind kind) { return kind == TokenKind::temporary ? 't' : 'p'; }

// The next unused id of a ring: its letter and one more than the highest
// number in use with that letter ("t3" after "t1", "t2").
std::string next_id(const std::vector<Secret>& secrets, TokenKind kind) {
  const char letter = id_letter(kind);
  std::uint64_t highest = 0;
  for (const Secret& secret : secrets) {
    if (secret.id.size() < 2 || secret.id[0] != letter) continue;
    std::uint64_t number = 0;
    const char* begin = secret.id.data() + 1;
    const char* end = secret.id.data() + secret.id.size();
    const auto [parsed_end, status] = std::from_chars(begin, end, number);
    if (status == std::errc() && parsed_end == end) highest = std::max(highest, number);
  }
  return std::string(1, letter) + std::to_string(highest + 1);
}

// The ring's secrets in the order they became active: by created, file
// order on a tie (the later line wins a tie, so it became active later).
std::vector<const Secret*> activation_order(const std::vector<Secret>& secrets, TokenKind kind) {
  std::vector<const Secret*> order;
  for (const Secret& secret : secrets) {
    if (secret.kind == kind) order.push_back(&secret);
  }
  std::stable_sort(order.begin(), order.end(), [](const Secret* left, const Secret* right) {
    return left->created < right->created;
  });
  return order;
}

}  // namespace

std::string_view kind_name(TokenKind kind) {
  return kind == TokenKind::temporary ? "temp" : "perm";
}

const Secret& SecretRings::Snapshot::active(TokenKind kind) const {
  const Secret* newest = nullptr;
  for (const Secret& secret : secrets) {
    if (secret.kind == kind && (newest == nullptr || secret.created >= newest->created)) {
      newest = &secret;
    }
  }
  // load() refuses a file with an empty ring, so this means a Snapshot built
  // by hand without one.
  if (newest == nullptr) {
    throw SecretFileError("no secret in the " + std::string(kind_name(kind)) + " ring");
  }
  return *newest;
}

const Secret* SecretRings::Snapshot::find(std::string_view id) const {
  for (const Secret& secret : secrets) {
    if (secret.id == id) return &secret;
  }
  return nullptr;
}

SecretRings SecretRings::load(const std::string& path) {
  LoadedFile loaded = read_secrets_file(path);
  SecretRings rings;
  rings.path_ = path;
  rings.snapshot_ = std::make_shared<const Snapshot>(std::move(loaded.snapshot));
  rings.refresh_ = std::make_shared<RefreshState>();
  rings.refresh_->loaded = loaded.identity;
  rings.refresh_->last_check = std::chrono::steady_clock::now();
  return rings;
}

SecretRings SecretRings::load_or_create(const std::string& path, std::int64_t now) {
  struct stat status {};
  if (::stat(path.c_str(), &status) == 0) return load(path);
  if (errno != ENOENT) throw SecretFileError(path + ": " + system_error_text(errno));

  const std::filesystem::path folder = std::filesystem::path(path).parent_path();
  if (!folder.empty()) {
    if (const std::error_code error = durable::make_directories(folder)) {
      throw SecretFileError(folder.string() + ": cannot create: " + error.message());
    }
  }
  {
    const UniqueFd lock = lock_secrets_file(path);
    // Another process may have created it while this one waited for the lock.
    if (::stat(path.c_str(), &status) != 0) {
      if (errno != ENOENT) throw SecretFileError(path + ": " + system_error_text(errno));
      std::vector<Secret> secrets = {fresh_secret(TokenKind::temporary, "t1", now),
                                     fresh_secret(TokenKind::permanent, "p1", now)};
      write_secrets_file(path, secrets);
      for (Secret& secret : secrets) sodium_memzero(secret.key.data(), secret.key.size());
      spdlog::info("created the token secrets file {}", path);
    }
  }
  return load(path);
}

std::vector<std::string> SecretRings::rotate(const std::string& path, std::optional<TokenKind> ring,
                                             std::int64_t now,
                                             std::chrono::seconds keep_temporary_after_retired,
                                             std::chrono::seconds keep_permanent_after_retired) {
  const UniqueFd lock = lock_secrets_file(path);
  std::vector<Secret> secrets = read_secrets_file(path).snapshot.secrets;

  std::vector<std::string> new_ids;
  for (const TokenKind kind : {TokenKind::temporary, TokenKind::permanent}) {
    if (ring && *ring != kind) continue;
    // Never older than the active secret, so that the new one takes over
    // even if the clock went back; on a tie the later line wins.
    const std::int64_t created = std::max(now, activation_order(secrets, kind).back()->created);
    secrets.push_back(fresh_secret(kind, next_id(secrets, kind), created));
    new_ids.push_back(secrets.back().id);
  }

  // A secret stopped being active when the next one of its ring was created;
  // after keep_*_after_retired no token it made can verify any more.
  std::vector<const Secret*> retired;
  for (const TokenKind kind : {TokenKind::temporary, TokenKind::permanent}) {
    const std::int64_t keep =
        (kind == TokenKind::temporary ? keep_temporary_after_retired : keep_permanent_after_retired)
            .count();
    const std::vector<const Secret*> order = activation_order(secrets, kind);
    for (std::size_t i = 0; i + 1 < order.size(); ++i) {
      const std::int64_t retired_at = order[i + 1]->created;
      if (now - retired_at > keep) retired.push_back(order[i]);
    }
  }
  std::vector<Secret> kept;
  for (const Secret& secret : secrets) {
    if (std::find(retired.begin(), retired.end(), &secret) == retired.end()) {
      kept.push_back(secret);
    }
  }
  write_secrets_file(path, kept);
  for (Secret& secret : secrets) sodium_memzero(secret.key.data(), secret.key.size());
  for (Secret& secret : kept) sodium_memzero(secret.key.data(), secret.key.size());
  return new_ids;
}

std::shared_ptr<const SecretRings::Snapshot> SecretRings::snapshot() const {
  return std::atomic_load(&snapshot_);
}

bool SecretRings::refresh_if_changed(std::chrono::milliseconds min_interval) const {
  if (!refresh_) return false;
  std::lock_guard lock(refresh_->mutex);
  const auto now = std::chrono::steady_clock::now();
  if (now - refresh_->last_check < min_interval) return false;
  refresh_->last_check = now;

  struct stat status {};
  if (::stat(path_.c_str(), &status) != 0) return false;  // a rename in progress, or deleted
  const FileIdentity current = identity_of(status);
  if (current == refresh_->loaded) return false;
  // Remembered whether the load works or not: a broken file is reported
  // once, and tried again only when it changes again.
  refresh_->loaded = current;
  try {
    LoadedFile loaded = read_secrets_file(path_);
    refresh_->loaded = loaded.identity;
    std::atomic_store(&snapshot_, std::shared_ptr<const Snapshot>(std::make_shared<const Snapshot>(
                                      std::move(loaded.snapshot))));
    spdlog::info("reloaded the token secrets from {}", path_);
    return true;
  } catch (const SecretFileError& error) {
    spdlog::error("{}; keeping the token secrets loaded before", error.what());
    return false;
  }
}

}  // namespace stokend::tokens
