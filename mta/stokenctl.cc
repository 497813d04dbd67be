// stokenctl: the administration tool. Manages the local users in the users
// file named by the configuration; a running stokend notices the change and
// reloads the file by itself. Inspects and changes the running daemon's
// queue over its control socket (mailq and postsuper in one), and lists the
// damage the spool found at start from the reports in its quarantine/
// folder (read directly, so it works whether or not the daemon runs). Rotates the
// token secrets and mints, revokes, inspects and lists submission tokens,
// on the files directly (mta/token_admin.h); imports and exports COI
// contact storage messages and syncs COI/Contacts folders
// (mta/contacts_admin.h).
//
// Contract: exit status 0 on success, 1 when the command failed (bad config,
// unknown user, unwritable file, unknown queue id, daemon not running, a
// token that does not verify...), 2 on a usage error. Messages go to
// standard error; only the data of `user list`, `queue list|show|damaged`,
// `secrets rotate|list`, `token new|inspect|list` and `contacts
// import|export` goes to standard output. Password hashes and token secrets are never printed.
#include <signal.h>
#include <sodium.h>
#include <spdlog/sinks/stdout_color_sinks.h>
#include <spdlog/spdlog.h>
#include <termios.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cctype>
#include <exception>
#include <iostream>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "mta/config/config.h"
#include "mta/contacts_admin.h"
#include "mta/control/control_client.h"
#include "mta/control/control_protocol.h"
#include "mta/token_admin.h"
#include "mta/users.h"
#include "queue/spool_forensics.h"

namespace {

using stokend::coi_filter_name;
using stokend::CoiFilter;
using stokend::parse_coi_filter;

constexpr int exit_success = 0;
constexpr int exit_failure = 1;
constexpr int exit_usage = 2;

constexpr const char* default_config_file = "etc/stokend.yaml";

constexpr std::string_view usage_text =
    R"(usage: stokenctl [--config FILE] user add ADDRESS
       stokenctl [--config FILE] user del ADDRESS
       stokenctl [--config FILE] user list
       stokenctl [--config FILE] user set ADDRESS coi-filter off|active|seen
       stokenctl [--config FILE] queue list
       stokenctl [--config FILE] queue show ID
       stokenctl [--config FILE] queue flush [ID]
       stokenctl [--config FILE] queue hold|release|delete ID
       stokenctl [--config FILE] queue damaged
       stokenctl [--config FILE] secrets rotate [temp|perm]
       stokenctl [--config FILE] secrets list
       stokenctl [--config FILE] token new temp|perm REMOTE LOCAL
       stokenctl [--config FILE] token revoke REMOTE LOCAL
       stokenctl [--config FILE] token inspect TOKEN [--remote REMOTE --local LOCAL]
       stokenctl [--config FILE] token list [issued|wallet] [USER]
       stokenctl [--config FILE] contacts import FILE|MAILDIR-FOLDER [--user ADDRESS]
                                                 [--restore-issued]
       stokenctl [--config FILE] contacts export USER
       stokenctl [--config FILE] contacts sync [USER]
       stokenctl --help

Manages stokend's local users, kept in the users_file named by the
configuration. A running stokend picks up changes by itself. The queue
commands talk to the running stokend over its control_socket. The secrets,
token and contacts commands work on tokens.secrets_file and tokens.store
directly, also while stokend runs (it notices their changes by itself).

commands:
  user add ADDRESS    add a user; ADDRESS must be in one of local_domains.
                      The password is read from standard input (one line);
                      on a terminal it is asked for twice, without echo.
  user del ADDRESS    remove a user
  user list           list the users and their settings
  user set ADDRESS coi-filter off|active|seen
                      set the user's COI message filter (active: chat mail
                      goes to the COI/Chats folder)
  queue list          list the queued messages, like mailq: a '!' after the
                      queue id marks a held message, a '*' one being delivered
  queue show ID       show a message's envelope, the state of each recipient
                      and its header section
  queue flush [ID]    attempt delivery now, of one message or of every one
  queue hold ID       keep a message from being delivered until released
  queue release ID    let a held message be delivered again
  queue delete ID     delete a message without notifying anyone
  queue damaged       list what the spool found damaged at start, from the
                      reports kept with the damaged files in the spool's
                      quarantine/ folder: each damaged record, what could
                      still be read of it (queue id, sender, recipients)
                      and what became of it (lost, recovered, ...)
  secrets rotate [temp|perm]
                      add a new active secret to the ring (both by default)
                      and print its id; older secrets keep verifying the
                      tokens they made until those have expired
  secrets list        list the secrets: id, ring, created, active or retired
                      (never the keys)
  token new temp|perm REMOTE LOCAL
                      print a new token that lets REMOTE deliver to the user
                      LOCAL (a permanent one is also stored)
  token revoke REMOTE LOCAL
                      revoke every token of the pair: delete its permanent
                      tokens, invalidate the temporary ones made so far
  token inspect TOKEN [--remote REMOTE --local LOCAL]
                      decode a token and verify it (for that pair, if given);
                      exit status 0 only when it is valid
  token list [issued|wallet] [USER]
                      list the permanent tokens issued and the tokens other
                      servers issued to local users (the wallet)
  contacts import FILE|MAILDIR-FOLDER
                      read COI contact storage messages (one message, an
                      mbox file, or a Maildir folder such as a user's
                      .COI.Contacts), check their tokens and merge the valid
                      ones: COI-TokenOut into the user's wallet; print what
                      was imported, unchanged or skipped, and why
  contacts export USER
                      print the user's contacts as COI contact storage
                      messages (mbox), rendered from the token store
  contacts sync [USER]
                      bring the COI/Contacts folder of USER (default: every
                      user) in line with the token store

options:
  --config FILE       configuration file (default: etc/stokend.yaml)
  --remote, --local   the pair to verify a token for (token inspect)
  --user ADDRESS      the user the imported contacts belong to (contacts
                      import; default: each message's To, else From)
  --restore-issued    also restore permanent COI-TokenIn tokens this server
                      issued that are missing from the token store (contacts
                      import; only if no revocation mark covers them)
  --help              show this help

exit status: 0 success, 1 failure, 2 usage error
)";

class UsageError {
 public:
  explicit UsageError(std::string message) : message_(std::move(message)) {}
  const std::string& message() const { return message_; }

 private:
  std::string message_;
};

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

int fail(const std::string& message) {
  std::cerr << "stokenctl: " << message << '\n';
  return exit_failure;
}

int add_user(const stokend::Config& config, stokend::UserDirectory& users,
             const std::string& address) {
  // Checked before asking for the password, so a typo costs no typing.
  const std::size_t at = address.rfind('@');
  if (at != std::string::npos) {
    std::string domain = address.substr(at + 1);
    std::transform(domain.begin(), domain.end(), domain.begin(),
                   [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
    if (!config.is_local_domain(domain)) {
      return fail(domain +
                  " is not a local domain (local_domains: " + joined(config.local_domains) + ")");
    }
  }
  if (const stokend::User* existing = users.find(address)) {
    return fail("user " + existing->address + " already exists");
  }
  Secret password;
  if (const auto error = read_new_password(address, password)) return fail(*error);
  if (const auto error = users.add(address, password.text)) return fail(*error);
  std::cerr << "added user " << users.find(address)->address << '\n';
  return exit_success;
}

int delete_user(stokend::UserDirectory& users, const std::string& address) {
  const stokend::User* user = users.find(address);
  const std::string stored_address = user ? user->address : address;
  if (const auto error = users.remove(address)) return fail(*error);
  std::cerr << "removed user " << stored_address << '\n';
  return exit_success;
}

int list_users(const stokend::Config& config, const stokend::UserDirectory& users) {
  const std::vector<stokend::User> all = users.all();
  if (all.empty()) {
    std::cerr << "no users in " << config.users_file.string() << '\n';
    return exit_success;
  }
  std::size_t width = 0;
  for (const stokend::User& user : all) width = std::max(width, user.address.size());
  for (const stokend::User& user : all) {
    std::cout << user.address << std::string(width - user.address.size() + 2, ' ')
              << "coi-filter=" << coi_filter_name(user.coi_filter)
              << (user.password_hash.empty() ? "  (no password: cannot log in)" : "") << '\n';
  }
  return exit_success;
}

int set_coi_filter(stokend::UserDirectory& users, const std::string& address, CoiFilter filter) {
  if (const auto error = users.set_coi_filter(address, filter)) return fail(*error);
  std::cerr << users.find(address)->address << ": coi-filter=" << coi_filter_name(filter) << '\n';
  return exit_success;
}

struct CommandLine {
  std::string config_file = default_config_file;
  bool help = false;
  std::vector<std::string> words;            // the command and its arguments
  stokend::admin::PairOptions pair;          // --remote, --local
  stokend::admin::ContactsOptions contacts;  // --user, --restore-issued
};

CommandLine parse_command_line(int argc, char** argv) {
  CommandLine command_line;
  bool options_ended = false;
  for (int i = 1; i < argc; ++i) {
    const std::string_view argument = argv[i];
    if (options_ended || argument.empty() || argument.front() != '-') {
      command_line.words.emplace_back(argument);
    } else if (argument == "--") {
      options_ended = true;
    } else if (argument == "--help" || argument == "-h") {
      command_line.help = true;
    } else if (argument == "--config" || argument == "-c") {
      if (++i == argc) throw UsageError(std::string(argument) + " needs a file name");
      command_line.config_file = argv[i];
    } else if (argument.starts_with("--config=")) {
      command_line.config_file = argument.substr(std::string_view("--config=").size());
    } else if (argument == "--remote" || argument == "--local") {
      if (++i == argc) throw UsageError(std::string(argument) + " needs an address");
      (argument == "--remote" ? command_line.pair.remote : command_line.pair.local) = argv[i];
    } else if (argument.starts_with("--remote=")) {
      command_line.pair.remote = argument.substr(std::string_view("--remote=").size());
    } else if (argument.starts_with("--local=")) {
      command_line.pair.local = argument.substr(std::string_view("--local=").size());
    } else if (argument == "--user") {
      if (++i == argc) throw UsageError("--user needs an address");
      command_line.contacts.user = argv[i];
    } else if (argument.starts_with("--user=")) {
      command_line.contacts.user = argument.substr(std::string_view("--user=").size());
    } else if (argument == "--restore-issued") {
      command_line.contacts.restore_issued = true;
    } else {
      throw UsageError("unknown option " + std::string(argument));
    }
  }
  return command_line;
}

struct QueueSubcommand {
  std::string_view name;
  stokend::control::Command command;
  enum class Id { none, required, optional } id;
};

constexpr std::array<QueueSubcommand, 6> queue_subcommands = {{
    {"list", stokend::control::Command::list, QueueSubcommand::Id::none},
    {"show", stokend::control::Command::show, QueueSubcommand::Id::required},
    {"flush", stokend::control::Command::flush, QueueSubcommand::Id::optional},
    {"hold", stokend::control::Command::hold, QueueSubcommand::Id::required},
    {"release", stokend::control::Command::release, QueueSubcommand::Id::required},
    {"delete", stokend::control::Command::remove, QueueSubcommand::Id::required},
}};

// The control request for a `queue ...` command.
stokend::control::Request queue_request(const std::vector<std::string>& words) {
  if (words.size() < 2) {
    throw UsageError(
        "'queue' needs a subcommand: list, show, flush, hold, release, delete or damaged");
  }
  const std::string& name = words[1];
  const auto subcommand = std::find_if(queue_subcommands.begin(), queue_subcommands.end(),
                                       [&](const auto& known) { return known.name == name; });
  if (subcommand == queue_subcommands.end()) {
    throw UsageError("unknown subcommand 'queue " + name + "'");
  }
  const std::size_t arguments = words.size() - 2;
  switch (subcommand->id) {
    case QueueSubcommand::Id::none:
      if (arguments != 0) throw UsageError("queue " + name + " takes no arguments");
      return {subcommand->command, {}};
    case QueueSubcommand::Id::optional:
      if (arguments == 0) return {subcommand->command, {}};
      if (arguments != 1) throw UsageError("queue " + name + " takes at most one queue ID");
      break;
    case QueueSubcommand::Id::required:
      if (arguments != 1) throw UsageError("queue " + name + " takes one queue ID");
      break;
  }
  if (!stokend::control::is_message_id(words[2])) {
    throw UsageError("'" + words[2] +
                     "' is not a queue ID (lowercase hex digits, as in queue list)");
  }
  return {subcommand->command, words[2]};
}

// Checks the shape of the command before anything is loaded, so a usage
// error never depends on the state of the config or users file.
void check_command(const CommandLine& command_line) {
  const std::vector<std::string>& words = command_line.words;
  if (words.empty()) throw UsageError("no command given");
  if (words[0] != "token" && (command_line.pair.remote || command_line.pair.local)) {
    throw UsageError("--remote and --local go with token inspect only");
  }
  if (words[0] != "contacts" &&
      (command_line.contacts.user || command_line.contacts.restore_issued)) {
    throw UsageError("--user and --restore-issued go with contacts import only");
  }
  if (words[0] == "contacts") {
    if (const auto error = stokend::admin::check_contacts_command(words, command_line.contacts)) {
      throw UsageError(*error);
    }
    return;
  }
  if (words[0] == "secrets" || words[0] == "token") {
    const auto error = words[0] == "secrets"
                           ? stokend::admin::check_secrets_command(words)
                           : stokend::admin::check_token_command(words, command_line.pair);
    if (error) throw UsageError(*error);
    return;
  }
  if (words[0] == "queue") {
    if (words.size() >= 2 && words[1] == "damaged") {
      if (words.size() != 2) throw UsageError("queue damaged takes no arguments");
      return;
    }
    queue_request(words);
    return;
  }
  if (words[0] != "user") throw UsageError("unknown command '" + words[0] + "'");
  if (words.size() < 2) throw UsageError("'user' needs a subcommand: add, del, list or set");
  const std::string& subcommand = words[1];
  const std::size_t arguments = words.size() - 2;
  if (subcommand == "add" || subcommand == "del") {
    if (arguments != 1) throw UsageError("user " + subcommand + " takes one ADDRESS");
  } else if (subcommand == "list") {
    if (arguments != 0) throw UsageError("user list takes no arguments");
  } else if (subcommand == "set") {
    if (arguments != 3) throw UsageError("usage: user set ADDRESS coi-filter off|active|seen");
    if (words[3] != "coi-filter") throw UsageError("unknown setting '" + words[3] + "'");
    if (!parse_coi_filter(words[4])) {
      throw UsageError("coi-filter must be off, active or seen, not '" + words[4] + "'");
    }
  } else {
    throw UsageError("unknown subcommand 'user " + subcommand + "'");
  }
}

// Reads the spool's quarantine/ folder directly: the reports are durable
// files, and they matter most when the daemon cannot start.
int list_damaged(const stokend::Config& config) {
  namespace queue = stokend::queue;
  const auto folder = config.spool_directory / queue::quarantine_folder_name;
  const queue::QuarantineListing listing = queue::list_quarantine(folder);
  if (listing.error) return fail("cannot list " + folder.string() + ": " + listing.error.message());
  for (const queue::DamagedRecord& damaged : listing.records) {
    std::cout << "quarantine/" << damaged.file << ": " << queue::describe(damaged) << '\n';
  }
  for (const std::string& name : listing.unreported_files) {
    std::cout << "quarantine/" << name << ": quarantined without a damage report\n";
  }
  std::cout << std::flush;
  for (const std::string& problem : listing.problems) std::cerr << "stokenctl: " << problem << '\n';
  if (listing.records.empty() && listing.unreported_files.empty() && listing.problems.empty()) {
    std::cerr << "stokenctl: nothing in " << folder.string() << '\n';
  }
  return listing.problems.empty() ? exit_success : exit_failure;
}

int run_queue_command(const stokend::Config& config, const std::vector<std::string>& words) {
  using stokend::control::Command;
  if (words[1] == "damaged") return list_damaged(config);
  const stokend::control::Request request = queue_request(words);
  std::string error;
  const auto answer = stokend::control::ask_daemon(config.control_socket, request, error);
  if (!answer) return fail(error);
  if (!answer->ok) {
    return fail(request.id.empty() ? answer->reason : request.id + ": " + answer->reason);
  }
  const bool data = request.command == Command::list || request.command == Command::show;
  (data ? std::cout : std::cerr) << answer->body << std::flush;
  return exit_success;
}

int run_user_command(const stokend::Config& config, const std::vector<std::string>& words) {
  stokend::UserDirectory users(config.users_file);
  const std::string& subcommand = words[1];
  stokend::UniqueFd update_lock;
  if (subcommand != "list") {
    std::string lock_error;
    update_lock = users.lock_for_update(lock_error);
    if (!update_lock) return fail(lock_error);
  }
  if (const auto error = users.load()) return fail(*error);

  if (subcommand == "add") return add_user(config, users, words[2]);
  if (subcommand == "del") return delete_user(users, words[2]);
  if (subcommand == "list") return list_users(config, users);
  return set_coi_filter(users, words[2], *parse_coi_filter(words[4]));
}

int run(const CommandLine& command_line) {
  const stokend::ConfigLoadResult loaded = stokend::load_config(command_line.config_file);
  if (!loaded.config) {
    for (const stokend::ConfigError& error : loaded.errors) {
      std::cerr << error.to_string() << '\n';
    }
    return exit_failure;
  }
  const std::vector<std::string>& words = command_line.words;
  if (words[0] == "queue") return run_queue_command(*loaded.config, words);
  if (words[0] == "secrets") {
    return stokend::admin::run_secrets_command(*loaded.config, words, std::cout, std::cerr);
  }
  if (words[0] == "token") {
    return stokend::admin::run_token_command(*loaded.config, words, command_line.pair, std::cout,
                                             std::cerr);
  }
  if (words[0] == "contacts") {
    return stokend::admin::run_contacts_command(*loaded.config, words, command_line.contacts,
                                                std::cout, std::cerr);
  }
  return run_user_command(*loaded.config, words);
}

}  // namespace

int main(int argc, char** argv) {
  // The libraries log through spdlog (e.g. "created the token secrets
  // file"): to standard error, which carries stokenctl's messages, so that
  // standard output stays data only.
  spdlog::set_default_logger(spdlog::stderr_color_mt("stokenctl"));
  spdlog::set_pattern("stokenctl: %v");
  try {
    const CommandLine command_line = parse_command_line(argc, argv);
    if (command_line.help) {
      std::cout << usage_text;
      return exit_success;
    }
    check_command(command_line);
    return run(command_line);
  } catch (const UsageError& error) {
    std::cerr << "stokenctl: " << error.message() << "\n\n" << usage_text;
    return exit_usage;
  } catch (const std::exception& error) {
    return fail(error.what());
  }
}
