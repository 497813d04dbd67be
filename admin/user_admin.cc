// stokenctl's user commands; see user_admin.h.
#include "admin/user_admin.h"

#include <signal.h>
#include <sodium.h>
#include <termios.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cctype>
#include <iostream>

#include "common/ascii.h"
#include "mta/users.h"

namespace stokend::admin {
namespace {

constexpr int exit_success = 0;
constexpr int exit_failure = 1;

// The terminal settings to put back if a signal ends the program while echo
// is off; otherwise the user's shell is left not echoing.
termios saved_terminal_settings{};

extern "C" void restore_terminal_and_reraise(int signal_number) {
  ::tcsetattr(STDIN_FILENO, TCSAFLUSH, &saved_terminal_settings);
  ::signal(signal_number, SIG_DFL);
  ::raise(signal_number);
}

// Turns off echo on the terminal on standard input for its lifetime.
class EchoOff {
 public:
  EchoOff() {
    if (::tcgetattr(STDIN_FILENO, &saved_terminal_settings) != 0) return;
    struct sigaction action {};
    action.sa_handler = restore_terminal_and_reraise;
    sigemptyset(&action.sa_mask);
    for (std::size_t i = 0; i < handled_signals.size(); ++i) {
      ::sigaction(handled_signals[i], &action, &previous_actions_[i]);
    }
    termios silent = saved_terminal_settings;
    silent.c_lflag &= ~static_cast<tcflag_t>(ECHO);
    active_ = ::tcsetattr(STDIN_FILENO, TCSAFLUSH, &silent) == 0;
  }
  ~EchoOff() {
    if (!active_) return;
    ::tcsetattr(STDIN_FILENO, TCSAFLUSH, &saved_terminal_settings);
    for (std::size_t i = 0; i < handled_signals.size(); ++i) {
      ::sigaction(handled_signals[i], &previous_actions_[i], nullptr);
    }
  }
  EchoOff(const EchoOff&) = delete;
  EchoOff& operator=(const EchoOff&) = delete;

 private:
  static constexpr std::array<int, 4> handled_signals = {SIGINT, SIGTERM, SIGHUP, SIGQUIT};
  std::array<struct sigaction, 4> previous_actions_{};
  bool active_ = false;
};

// A string that is wiped from memory when it goes away.
struct Secret {
  std::string text;
  Secret() = default;
  Secret(const Secret&) = delete;
  Secret& operator=(const Secret&) = delete;
  ~Secret() { sodium_memzero(text.data(), text.size()); }
};

bool read_line(Secret& line) {
  if (!std::getline(std::cin, line.text)) return false;
  if (!line.text.empty() && line.text.back() == '\r') line.text.pop_back();
  return true;
}

bool read_line_without_echo(const std::string& prompt, Secret& line) {
  std::cerr << prompt << std::flush;
  bool read = false;
  {
    EchoOff echo_off;
    read = read_line(line);
  }
  std::cerr << '\n';
  return read;
}

// Reads the new user's password: asked twice on a terminal, one line from a
// pipe or file (for scripts). Empty passwords are refused by the directory.
std::optional<std::string> read_new_password(const std::string& address, Secret& password) {
  if (!::isatty(STDIN_FILENO)) {
    if (!read_line(password)) return "no password on standard input";
    return std::nullopt;
  }
  if (!read_line_without_echo("Password for " + address + ": ", password)) {
    return "no password entered";
  }
  Secret repeated;
  if (!read_line_without_echo("Repeat the password: ", repeated)) return "no password entered";
  if (password.text != repeated.text) return "the passwords do not match";
  return std::nullopt;
}

std::string joined(const std::vector<std::string>& items) {
  std::string text;
  for (const std::string& item : items) text += (text.empty() ? "" : ", ") + item;
  return text;
}

int fail(std::ostream& err, const std::string& message) {
  err << "stokenctl: " << message << '\n';
  return exit_failure;
}

int add_user(const Config& config, UserDirectory& users, const std::string& address,
             std::ostream& err) {
  // Checked before asking for the password, so a typo costs no typing.
  const std::size_t at = address.rfind('@');
  if (at != std::string::npos) {
    const std::string domain = ascii_lowercase(address.substr(at + 1));
    if (!config.is_local_domain(domain)) {
      return fail(err, domain + " is not a local domain (local_domains: " +
                           joined(config.local_domains) + ")");
    }
  }
  if (const User* existing = users.find(address)) {
    return fail(err, "user " + existing->address + " already exists");
  }
  Secret password;
  if (const auto error = read_new_password(address, password)) return fail(err, *error);
  if (const auto error = users.add(address, password.text)) return fail(err, *error);
  err << "added user " << users.find(address)->address << '\n';
  return exit_success;
}

int delete_user(UserDirectory& users, const std::string& address, std::ostream& err) {
  const User* user = users.find(address);
  const std::string stored_address = user ? user->address : address;
  if (const auto error = users.remove(address)) return fail(err, *error);
  err << "removed user " << stored_address << '\n';
  return exit_success;
}

int list_users(const Config& config, const UserDirectory& users, std::ostream& out,
               std::ostream& err) {
  const std::vector<User> all = users.all();
  if (all.empty()) {
    err << "no users in " << config.users_file.string() << '\n';
    return exit_success;
  }
  std::size_t width = 0;
  for (const User& user : all) width = std::max(width, user.address.size());
  for (const User& user : all) {
    out << user.address << std::string(width - user.address.size() + 2, ' ')
        << "coi-filter=" << coi_filter_name(user.coi_filter)
        << (user.password_hash.empty() ? "  (no password: cannot log in)" : "") << '\n';
  }
  return exit_success;
}

int set_coi_filter(UserDirectory& users, const std::string& address, CoiFilter filter,
                   std::ostream& err) {
  if (const auto error = users.set_coi_filter(address, filter)) return fail(err, *error);
  err << users.find(address)->address << ": coi-filter=" << coi_filter_name(filter) << '\n';
  return exit_success;
}

}  // namespace

std::optional<std::string> check_user_command(const std::vector<std::string>& words) {
  if (words.size() < 2) return "'user' needs a subcommand: add, del, list or set";
  const std::string& subcommand = words[1];
  const std::size_t arguments = words.size() - 2;
  if (subcommand == "add" || subcommand == "del") {
    if (arguments != 1) return "user " + subcommand + " takes one ADDRESS";
  } else if (subcommand == "list") {
    if (arguments != 0) return "user list takes no arguments";
  } else if (subcommand == "set") {
    if (arguments != 3) return "usage: user set ADDRESS coi-filter off|active|seen";
    if (words[3] != "coi-filter") return "unknown setting '" + words[3] + "'";
    if (!parse_coi_filter(words[4])) {
      return "coi-filter must be off, active or seen, not '" + words[4] + "'";
    }
  } else {
    return "unknown subcommand 'user " + subcommand + "'";
  }
  return std::nullopt;
}

int run_user_command(const Config& config, const std::vector<std::string>& words, std::ostream& out,
                     std::ostream& err) {
  UserDirectory users(config.users_file);
  const std::string& subcommand = words[1];
  UniqueFd update_lock;
  if (subcommand != "list") {
    std::string lock_error;
    update_lock = users.lock_for_update(lock_error);
    if (!update_lock) return fail(err, lock_error);
  }
  if (const auto error = users.load()) return fail(err, *error);

  if (subcommand == "add") return add_user(config, users, words[2], err);
  if (subcommand == "del") return delete_user(users, words[2], err);
  if (subcommand == "list") return list_users(config, users, out, err);
  return set_coi_filter(users, words[2], *parse_coi_filter(words[4]), err);
}

}  // namespace stokend::admin
