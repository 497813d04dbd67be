// The users file: reading, validating and durably rewriting it, and the
// password hashing its entries rely on.
//
// Contract (users.h): a file that fails to parse never replaces what was
// loaded before, and every mutation is on disk before it is reported done.
// On a failed write the in-memory directory is rolled back, so memory and
// file always agree.
#include "mta/users.h"

#include <fcntl.h>
#include <sodium.h>
#include <sys/file.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <cstring>
#include <fstream>
#include <stdexcept>
#include <utility>

#include "common/ascii.h"
#include "common/durable_file.h"

namespace stokend {
namespace {

constexpr std::string_view coi_filter_setting = "coi_filter";

// Written at the top of every saved file, for whoever opens it.
constexpr std::string_view file_header =
    "# stokend users, one per line: address:password-hash[:setting=value,...]\n"
    "# Managed with stokenctl; comments added here are not kept.\n";

// Why address cannot be a user's address, or nullopt when it can. The file
// format needs no ':' (field separator), no whitespace or control characters
// (line structure) and no leading '#' (comment); the rest is the shape of
// local@domain, where the local part may be quoted and contain '@'.
std::optional<std::string> address_problem(std::string_view address) {
  if (address.empty()) return "it is empty";
  if (address.front() == '#') return "it starts with '#'";
  bool in_quotes = false;
  bool escaped = false;
  std::size_t at_count = 0;
  std::size_t at_position = 0;
  for (std::size_t i = 0; i < address.size(); ++i) {
    const char c = address[i];
    const auto byte = static_cast<unsigned char>(c);
    if (c == ' ') return "it contains whitespace";
    if (byte < 0x20 || byte == 0x7f) return "it contains a control character";
    if (c == ':') return "it contains ':'";
    if (escaped) {
      escaped = false;
    } else if (in_quotes) {
      if (c == '\\') escaped = true;
      if (c == '"') in_quotes = false;
    } else if (c == '"') {
      in_quotes = true;
    } else if (c == '@') {
      ++at_count;
      at_position = i;
    }
  }
  if (in_quotes) return "it has an unterminated quote";
  if (at_count == 0) return "it has no '@'";
  if (at_count > 1) return "it has more than one '@'";
  if (at_position == 0) return "the part before '@' is empty";
  const std::string_view domain = address.substr(at_position + 1);
  if (domain.empty()) return "the domain after '@' is empty";
  if (domain.find('"') != std::string_view::npos) return "the domain contains a quote";
  return std::nullopt;
}

// Parses one non-comment line into user, or says what is wrong with it.
std::optional<std::string> parse_line(std::string_view line, User& user) {
  const std::size_t address_end = line.find(':');
  if (address_end == std::string_view::npos) {
    return "expected address:password-hash[:settings]";
  }
  const std::string_view address = line.substr(0, address_end);
  if (const auto problem = address_problem(address)) {
    return "invalid address '" + std::string(address) + "': " + *problem;
  }
  user.address = ascii_lowercase(address);

  std::string_view rest = line.substr(address_end + 1);
  const std::size_t hash_end = rest.find(':');
  const std::string_view hash = rest.substr(0, hash_end);
  // Anything else (a plain-text password, a truncated hash) would make every
  // login fail with no hint why; say so at load time instead.
  if (!hash.empty() && (!hash.starts_with("$argon2") || hash.size() >= crypto_pwhash_STRBYTES)) {
    return "the password hash is not a libsodium crypto_pwhash_str string";
  }
  user.password_hash = std::string(hash);

  std::string_view settings =
      hash_end == std::string_view::npos ? std::string_view() : rest.substr(hash_end + 1);
  while (!settings.empty()) {
    const std::size_t setting_end = settings.find(',');
    const std::string_view setting = settings.substr(0, setting_end);
    settings = setting_end == std::string_view::npos ? std::string_view()
                                                     : settings.substr(setting_end + 1);
    const std::size_t equals = setting.find('=');
    if (equals == std::string_view::npos) {
      return "expected setting=value, got '" + std::string(setting) + "'";
    }
    const std::string_view name = setting.substr(0, equals);
    const std::string_view value = setting.substr(equals + 1);
    if (name != coi_filter_setting) return "unknown setting '" + std::string(name) + "'";
    const auto filter = parse_coi_filter(value);
    if (!filter) {
      return "coi_filter must be off, active or seen, got '" + std::string(value) + "'";
    }
    user.coi_filter = *filter;
  }
  return std::nullopt;
}

std::string format_line(const User& user) {
  std::string line = user.address + ":" + user.password_hash;
  if (user.coi_filter != CoiFilter::off) {
    line +=
        ":" + std::string(coi_filter_setting) + "=" + std::string(coi_filter_name(user.coi_filter));
  }
  return line + "\n";
}

bool sodium_ready() {
  // sodium_init() is thread-safe and idempotent; the static runs it once.
  static const bool initialised = ::sodium_init() >= 0;
  return initialised;
}

}  // namespace

std::string_view coi_filter_name(CoiFilter filter) {
  switch (filter) {
    case CoiFilter::active:
      return "active";
    case CoiFilter::seen:
      return "seen";
    case CoiFilter::off:
      break;
  }
  return "off";
}

std::optional<CoiFilter> parse_coi_filter(std::string_view name) {
  if (name == "off") return CoiFilter::off;
  if (name == "active") return CoiFilter::active;
  if (name == "seen") return CoiFilter::seen;
  return std::nullopt;
}

UserDirectory::UserDirectory(std::filesystem::path file) : file_(std::move(file)) {}

std::optional<std::string> UserDirectory::load() {
  // Stat before reading: if the file changes in between, the next refresh
  // sees a newer stamp and reads it again.
  const FileStamp stamp = file_stamp(file_);
  const std::string file_name = file_.string();
  auto fail = [&](std::string error) {
    loaded_stamp_ = stamp;
    last_load_error_ = error;
    return std::optional<std::string>(std::move(error));
  };

  std::error_code exists_error;
  if (!std::filesystem::exists(file_, exists_error) && !exists_error) {
    users_.clear();
    loaded_stamp_ = stamp;
    last_load_error_.reset();
    return std::nullopt;
  }
  errno = 0;
  std::ifstream stream(file_, std::ios::binary);
  if (!stream) {
    return fail(file_name + ": cannot read: " +
                (errno != 0 ? std::system_category().message(errno) : "open failed"));
  }

  std::map<std::string, User> users;
  std::map<std::string, std::size_t> line_of_address;
  std::string line;
  for (std::size_t line_number = 1; std::getline(stream, line); ++line_number) {
    if (!line.empty() && line.back() == '\r') line.pop_back();
    const bool blank =
        std::all_of(line.begin(), line.end(), [](char c) { return c == ' ' || c == '\t'; });
    if (blank || line.front() == '#') continue;
    const std::string where = file_name + ":" + std::to_string(line_number) + ": ";
    User user;
    if (const auto problem = parse_line(line, user)) return fail(where + *problem);
    const auto [first, inserted] = line_of_address.emplace(user.address, line_number);
    if (!inserted) {
      return fail(where + "duplicate user " + user.address + " (also on line " +
                  std::to_string(first->second) + ")");
    }
    users.emplace(user.address, std::move(user));
  }
  if (stream.bad()) return fail(file_name + ": read error");

  users_ = std::move(users);
  loaded_stamp_ = stamp;
  last_load_error_.reset();
  return std::nullopt;
}

bool UserDirectory::refresh_if_changed() {
  const auto now = std::chrono::steady_clock::now();
  if (last_check_ && now - *last_check_ < std::chrono::seconds(1)) return false;
  last_check_ = now;
  if (file_stamp(file_) == loaded_stamp_) return false;
  return !load().has_value();
}

const User* UserDirectory::find(std::string_view address) const {
  const auto user = users_.find(ascii_lowercase(address));
  return user == users_.end() ? nullptr : &user->second;
}

std::vector<User> UserDirectory::all() const {
  std::vector<User> users;
  users.reserve(users_.size());
  for (const auto& [address, user] : users_) users.push_back(user);
  return users;
}

std::optional<std::string> UserDirectory::add(std::string_view address, std::string_view password) {
  if (const auto problem = address_problem(address)) {
    return "invalid address '" + std::string(address) + "': " + *problem;
  }
  const std::string key = ascii_lowercase(address);
  if (users_.contains(key)) return "user " + key + " already exists";
  if (password.empty()) return "the password is empty";

  User user{.address = key, .password_hash = {}, .coi_filter = CoiFilter::off};
  try {
    user.password_hash = hash_password(password);
  } catch (const std::exception& error) {
    return std::string("cannot hash the password: ") + error.what();
  }
  users_.emplace(key, std::move(user));
  if (auto error = save()) {
    users_.erase(key);
    return error;
  }
  return std::nullopt;
}

std::optional<std::string> UserDirectory::remove(std::string_view address) {
  const auto user = users_.find(ascii_lowercase(address));
  if (user == users_.end()) return "no such user " + ascii_lowercase(address);
  User removed = std::move(user->second);
  users_.erase(user);
  if (auto error = save()) {
    users_.emplace(removed.address, std::move(removed));
    return error;
  }
  return std::nullopt;
}

std::optional<std::string> UserDirectory::set_coi_filter(std::string_view address,
                                                         CoiFilter filter) {
  const auto user = users_.find(ascii_lowercase(address));
  if (user == users_.end()) return "no such user " + ascii_lowercase(address);
  const CoiFilter previous = user->second.coi_filter;
  user->second.coi_filter = filter;
  if (auto error = save()) {
    user->second.coi_filter = previous;
    return error;
  }
  return std::nullopt;
}

std::optional<std::string> UserDirectory::save() {
  std::string contents(file_header);
  for (const auto& [address, user] : users_) contents += format_line(user);

  // The first `stokenctl user add` in a fresh tree creates var/ itself.
  if (file_.has_parent_path()) {
    if (const auto error = durable::make_directories(file_.parent_path())) {
      return "cannot create folder " + file_.parent_path().string() + ": " + error.message();
    }
  }
  // 0600: the hashes are only for stokend's eyes, offline guessing is cheap
  // enough to be worth denying.
  const durable::WriteResult written = durable::replace_file(file_, contents, 0600);
  if (!written) {
    return "cannot write " + file_.string() + " (" + written.step + "): " + written.error.message();
  }
  loaded_stamp_ = file_stamp(file_);
  last_load_error_.reset();
  return std::nullopt;
}

std::string hash_password(std::string_view password) {
  if (!sodium_ready()) throw std::runtime_error("libsodium failed to initialise");
  std::array<char, crypto_pwhash_STRBYTES> hash{};
  if (::crypto_pwhash_str(hash.data(), password.data(), password.size(),
                          crypto_pwhash_OPSLIMIT_INTERACTIVE,
                          crypto_pwhash_MEMLIMIT_INTERACTIVE) != 0) {
    throw std::runtime_error("out of memory while hashing a password");
  }
  return std::string(hash.data());
}

bool verify_password(std::string_view hash, std::string_view password) {
  if (!sodium_ready()) return false;
  if (hash.empty() || hash.size() >= crypto_pwhash_STRBYTES) return false;
  // crypto_pwhash_str_verify reads a NUL-terminated string.
  const std::string terminated_hash(hash);
  return ::crypto_pwhash_str_verify(terminated_hash.c_str(), password.data(), password.size()) == 0;
}

UniqueFd UserDirectory::lock_for_update(std::string& error) const {
  std::filesystem::path lock_path = file_;
  lock_path += ".lock";
  if (lock_path.has_parent_path()) {
    if (auto failure = durable::make_directories(lock_path.parent_path())) {
      error = lock_path.parent_path().string() + ": " + failure.message();
      return UniqueFd{};
    }
  }
  UniqueFd lock(::open(lock_path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0600));
  if (!lock) {
    error = lock_path.string() + ": " + std::strerror(errno);
    return UniqueFd{};
  }
  while (::flock(lock.get(), LOCK_EX) != 0) {
    if (errno != EINTR) {
      error = lock_path.string() + ": cannot lock: " + std::strerror(errno);
      return UniqueFd{};
    }
  }
  return lock;
}

}  // namespace stokend
