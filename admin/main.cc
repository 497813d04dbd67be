// stokenctl: the administration tool's command line. Manages the local
// users in the users file named by the configuration (user_admin.h); a
// running stokend notices the change and reloads the file by itself.
// Inspects and changes the running daemon's queue over its control socket
// and asks it to reload its configuration (reload_admin.h),
// and lists the damage the spool found at start (queue_admin.h). Tests any
// Token Server from the outside (stoken_send.h, stoken_check.h). Rotates the
// token secrets and mints, revokes, inspects and lists submission tokens,
// on the files directly (token_admin.h); imports and exports COI contact
// storage messages and syncs COI/Contacts folders (contacts_admin.h). This
// file parses the command line, checks the command's shape and hands it to
// the module of its group. Run as root with `user:` in the configuration,
// it becomes that user first, as the daemon does.
//
// Contract: exit status 0 on success, 1 when the command failed (bad config,
// unknown user, unwritable file, unknown queue id, daemon not running, a
// token that does not verify...), 2 on a usage error. Messages go to
// standard error; only the data of `user list`, `queue list|show|damaged`, `reload`,
// `secrets rotate|list`, `token new|inspect|list` and `contacts
// import|export` goes to standard output. Password hashes and token secrets are never printed.
#include <spdlog/sinks/stdout_color_sinks.h>
#include <spdlog/spdlog.h>
#include <unistd.h>

#include <exception>
#include <iostream>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "admin/contacts_admin.h"
#include "admin/queue_admin.h"
#include "admin/reload_admin.h"
#include "admin/stoken_send.h"
#include "admin/token_admin.h"
#include "admin/user_admin.h"
#include "mta/config/config.h"
#include "mta/system_accounts.h"

namespace {

constexpr int exit_success = 0;
constexpr int exit_failure = 1;
constexpr int exit_usage = 2;

// Set by the build (CMakeLists.txt): etc/stokend.yaml, or the installed path.
constexpr const char* default_config_file = STOKEND_CONFIG_FILE;

constexpr std::string_view usage_text =
    R"(usage: stokenctl [--config FILE] user add ADDRESS
       stokenctl [--config FILE] user del ADDRESS
       stokenctl [--config FILE] user list
       stokenctl [--config FILE] user set ADDRESS coi-filter off|active|seen
       stokenctl [--config FILE] queue list
       stokenctl [--config FILE] queue show ID
       stokenctl [--config FILE] queue flush [ID]
       stokenctl [--config FILE] queue hold|release|delete|requeue ID|ALL
       stokenctl [--config FILE] queue hold|release|delete|requeue --domain DOMAIN
       stokenctl [--config FILE] queue damaged
       stokenctl [--config FILE] reload
       stokenctl [--config FILE] secrets rotate [temp|perm]
       stokenctl [--config FILE] secrets list
       stokenctl [--config FILE] token new temp|perm REMOTE LOCAL
       stokenctl [--config FILE] token revoke REMOTE LOCAL
       stokenctl [--config FILE] token inspect TOKEN [--remote REMOTE --local LOCAL]
       stokenctl [--config FILE] token list [issued|wallet] [USER]
       stokenctl [--config FILE] token migrate --to redis URL | --to sqlite PATH
       stokenctl [--config FILE] contacts import FILE|MAILDIR-FOLDER [--user ADDRESS]
                                                 [--restore-issued]
       stokenctl [--config FILE] contacts export USER
       stokenctl [--config FILE] contacts sync [USER]
       stokenctl stoken send|check ...
       stokenctl --help

Manages stokend's local users, kept in the users_file named by the
configuration. A running stokend picks up changes by itself. The queue
commands and reload talk to the running stokend over its control_socket.
The secrets, token and contacts commands work on tokens.secrets_file and
tokens.store directly, also while stokend runs (it notices their changes by
itself).

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
  queue requeue ID    deliver a message again now, with the configuration in
                      force, releasing it if held (like postsuper -r); its
                      attempt count and arrival time stay
                      Instead of an ID, hold, release, delete and requeue
                      take ALL (every queued message) or --domain DOMAIN
                      (the messages whose pending recipients are all at
                      DOMAIN; one that also has recipients elsewhere is left
                      alone and counted in the answer)
  queue damaged       list what the spool found damaged at start, from the
                      reports kept with the damaged files in the spool's
                      quarantine/ folder: each damaged record, what could
                      still be read of it (queue id, sender, recipients)
                      and what became of it (lost, recovered, ...)
  reload              make the running stokend read its configuration, users
                      file and TLS certificate again (as SIGHUP does);
                      prints "reloaded", or "reload refused: REASON" and
                      exits 1 when the configuration fails its check (the
                      one in force stays)
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
  token migrate --to redis URL | --to sqlite PATH
                      copy the configured token store's unexpired tokens
                      and revocation marks into another store (e.g. the
                      Redis server several nodes will share); the target
                      keeps what it has
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
  stoken send ...     deliver one message through any Token Server with a
                      token (LHLO, or EHLO + SYNC with --dialect ehlo-sync),
                      print the transcript (--show-transcript; tokens
                      shortened unless --show-tokens) and each recipient's
                      result; exit 0 only when all got 2.1.12 or 2.1.13
  stoken check ...    check any Token Server against the draft, one
                      PASS/FAIL/SKIP line per check (--json); exit 1 on a
                      FAIL. `stokenctl stoken` lists their options; they
                      need no configuration file

options:
  --config FILE       configuration file (default: )" STOKEND_CONFIG_FILE R"()
  --version           print the version and exit
  --domain DOMAIN     the messages for DOMAIN (queue hold, release, delete,
                      requeue)
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

// The synopsis lines of one command ("queue", "token", ...), or the whole
// synopsis when the command is not one: what a usage error shows, so the
// mistake stays on the first line and the help is one --help away.
std::string usage_of(std::string_view command) {
  const std::string_view synopsis = usage_text.substr(0, usage_text.find("\n\n") + 1);
  std::string lines;
  bool matched = false;
  std::string_view rest = synopsis;
  while (!rest.empty()) {
    const std::size_t end = rest.find('\n');
    const std::string_view line = rest.substr(0, end + 1);
    rest.remove_prefix(line.size());
    const std::size_t word = line.find("] ");
    if (line.find("stokenctl") == std::string_view::npos) {  // a continuation line
      if (matched) lines += line;
      continue;
    }
    matched = !command.empty() && word != std::string_view::npos &&
              line.substr(word + 2).starts_with(std::string(command) + " ");
    if (matched) {
      lines += lines.empty() ? "usage: " : "       ";
      lines += line.substr(line.find("stokenctl"));
    }
  }
  if (lines.empty()) return std::string(synopsis);
  return lines + "(stokenctl --help describes every command)\n";
}

// The first word that is not an option: the command a usage error is about.
std::string_view command_word(int argc, char** argv) {
  for (int i = 1; i < argc; ++i) {
    const std::string_view argument = argv[i];
    if (argument == "--config" || argument == "-c" || argument == "--remote" ||
        argument == "--local" || argument == "--user" || argument == "--domain") {
      ++i;  // skips the option's value
    } else if (!argument.empty() && argument.front() != '-') {
      return argument;
    }
  }
  return {};
}

int fail(const std::string& message) {
  std::cerr << "stokenctl: " << message << '\n';
  return exit_failure;
}

struct CommandLine {
  std::string config_file = default_config_file;
  bool help = false;
  bool version = false;
  std::vector<std::string> words;            // the command and its arguments
  stokend::admin::PairOptions pair;          // --remote, --local
  stokend::admin::ContactsOptions contacts;  // --user, --restore-issued
  stokend::admin::QueueOptions queue;        // --domain
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
    } else if (argument == "--version") {
      command_line.version = true;
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
    } else if (argument == "--domain") {
      if (++i == argc) throw UsageError("--domain needs a domain name");
      command_line.queue.domain = argv[i];
    } else if (argument.starts_with("--domain=")) {
      command_line.queue.domain = argument.substr(std::string_view("--domain=").size());
    } else if (argument == "--restore-issued") {
      command_line.contacts.restore_issued = true;
    } else if (argument == "--to") {
      // token migrate --to BACKEND TARGET: kept in the words, where the
      // command's shape is checked (check_token_command).
      command_line.words.emplace_back(argument);
    } else {
      throw UsageError("unknown option " + std::string(argument));
    }
  }
  return command_line;
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
  if (words[0] != "queue" && command_line.queue.domain) {
    throw UsageError("--domain goes with the queue commands only");
  }
  std::optional<std::string> error;
  if (words[0] == "contacts") {
    error = stokend::admin::check_contacts_command(words, command_line.contacts);
  } else if (words[0] == "secrets") {
    error = stokend::admin::check_secrets_command(words);
  } else if (words[0] == "token") {
    error = stokend::admin::check_token_command(words, command_line.pair);
  } else if (words[0] == "queue") {
    error = stokend::admin::check_queue_command(words, command_line.queue);
  } else if (words[0] == "user") {
    error = stokend::admin::check_user_command(words);
  } else if (words[0] == "reload") {
    if (words.size() != 1) error = "reload takes no arguments";
  } else {
    error = "unknown command '" + words[0] + "'";
  }
  if (error) throw UsageError(*error);
}

// Run as root with `user:` set, stokenctl becomes that user before it
// touches a file, as the daemon does (daemon/privileges.h): the users file,
// token store and contacts folders it writes stay the daemon's to read, and
// the control socket answers its own user. The error text, empty on success.
std::string become_configured_user(const stokend::Config& config) {
  if (::geteuid() != 0 || config.user.empty()) return {};
  const auto user = stokend::find_system_user(config.user);
  if (!user) return "user " + config.user + ": no such user on this system";
  if (user->uid == 0) return {};
  gid_t group = user->primary_group;
  if (!config.group.empty()) {
    const auto named = stokend::find_system_group(config.group);
    if (!named) return "group " + config.group + ": no such group on this system";
    group = *named;
  }
  return stokend::become_user(user->name, user->uid, group);
}

int run(const CommandLine& command_line) {
  const stokend::ConfigLoadResult loaded = stokend::load_config(command_line.config_file);
  const std::vector<std::string>& words = command_line.words;
  if (!loaded.config) {
    for (const stokend::ConfigError& error : loaded.errors) {
      std::cerr << error.to_string() << '\n';
    }
    // The daemon would refuse this file too, and without it the control
    // socket is unknown: the configuration in force stays.
    if (words[0] == "reload") {
      std::cerr << "stokenctl: reload refused: " << command_line.config_file
                << " has errors; the running stokend keeps the configuration in force\n";
    }
    return exit_failure;
  }
  if (const std::string error = become_configured_user(*loaded.config); !error.empty()) {
    std::cerr << "stokenctl: cannot run as " << loaded.config->user << ": " << error << '\n';
    return exit_failure;
  }
  if (words[0] == "reload") {
    return stokend::admin::run_reload_command(*loaded.config, std::cout, std::cerr);
  }
  if (words[0] == "queue") {
    return stokend::admin::run_queue_command(*loaded.config, words, command_line.queue, std::cout,
                                             std::cerr);
  }
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
  return stokend::admin::run_user_command(*loaded.config, words, std::cout, std::cerr);
}

// `stoken ...` talks to a Token Server and needs no configuration: its
// words, options included, go to stoken_send.h as they are.
std::optional<std::vector<std::string>> stoken_arguments(int argc, char** argv) {
  int i = 1;
  if (i < argc && (std::string_view(argv[i]) == "--config" || std::string_view(argv[i]) == "-c")) {
    i += 2;
  }
  if (i >= argc || std::string_view(argv[i]) != "stoken") return std::nullopt;
  return std::vector<std::string>(argv + i + 1, argv + argc);
}

}  // namespace

int main(int argc, char** argv) {
  // The libraries log through spdlog (e.g. "created the token secrets
  // file"): to standard error, which carries stokenctl's messages, so that
  // standard output stays data only.
  spdlog::set_default_logger(spdlog::stderr_color_mt("stokenctl"));
  spdlog::set_pattern("stokenctl: %v");
  try {
    if (const auto arguments = stoken_arguments(argc, argv)) {
      return stokend::admin::run_stoken_command(*arguments, std::cout, std::cerr);
    }
    const CommandLine command_line = parse_command_line(argc, argv);
    if (command_line.help) {
      std::cout << usage_text;
      return exit_success;
    }
    if (command_line.version) {
      std::cout << "stokenctl " << STOKEND_VERSION << "\n";
      return exit_success;
    }
    check_command(command_line);
    return run(command_line);
  } catch (const UsageError& error) {
    std::cerr << "stokenctl: " << error.message() << '\n' << usage_of(command_word(argc, argv));
    return exit_usage;
  } catch (const std::exception& error) {
    return fail(error.what());
  }
}
