// stokenctl's queue commands; see queue_admin.h.
#include "admin/queue_admin.h"

#include <algorithm>
#include <array>
#include <string_view>
#include <variant>

#include "common/ascii.h"
#include "mta/control/control_client.h"
#include "mta/control/control_protocol.h"
#include "queue/spool_forensics.h"

namespace stokend::admin {
namespace {

constexpr int exit_success = 0;
constexpr int exit_failure = 1;

int fail(std::ostream& err, const std::string& message) {
  err << "stokenctl: " << message << '\n';
  return exit_failure;
}

struct QueueSubcommand {
  std::string_view name;
  control::Command command;
  // selection: one id, ALL, or --domain D.
  enum class Id { none, required, optional, selection } id;
};

constexpr std::array<QueueSubcommand, 7> queue_subcommands = {{
    {"list", control::Command::list, QueueSubcommand::Id::none},
    {"show", control::Command::show, QueueSubcommand::Id::required},
    {"flush", control::Command::flush, QueueSubcommand::Id::optional},
    {"hold", control::Command::hold, QueueSubcommand::Id::selection},
    {"release", control::Command::release, QueueSubcommand::Id::selection},
    {"delete", control::Command::remove, QueueSubcommand::Id::selection},
    {"requeue", control::Command::requeue, QueueSubcommand::Id::selection},
}};

// The request of a subcommand that changes messages: one id, ALL, or the
// messages for --domain D.
std::variant<control::Request, std::string> selection_request(const QueueSubcommand& subcommand,
                                                              const std::vector<std::string>& words,
                                                              const QueueOptions& options) {
  const std::string& name = words[1];
  const std::size_t arguments = words.size() - 2;
  if (options.domain) {
    if (arguments != 0) return "queue " + name + " takes a queue ID, ALL or --domain, not two";
    const std::string domain = ascii_lowercase(*options.domain);
    if (!control::is_selectable_domain(domain)) {
      return "'" + *options.domain + "' is not a domain name";
    }
    return control::Request::for_domain(subcommand.command, domain);
  }
  if (arguments != 1) return "queue " + name + " takes one queue ID, ALL or --domain DOMAIN";
  if (words[2] == "ALL") return control::Request::every_message(subcommand.command);
  if (!control::is_message_id(words[2])) {
    return "'" + words[2] + "' is not a queue ID (lowercase hex digits, as in queue list) or ALL";
  }
  return control::Request{subcommand.command, words[2]};
}

// The control request for a `queue ...` command, or why the command is
// not one (a usage error).
std::variant<control::Request, std::string> queue_request(const std::vector<std::string>& words,
                                                          const QueueOptions& options) {
  if (words.size() < 2) {
    return "'queue' needs a subcommand: list, show, flush, hold, release, delete, requeue or "
           "damaged";
  }
  const std::string& name = words[1];
  const auto subcommand = std::find_if(queue_subcommands.begin(), queue_subcommands.end(),
                                       [&](const auto& known) { return known.name == name; });
  if (subcommand == queue_subcommands.end()) return "unknown subcommand 'queue " + name + "'";
  if (subcommand->id == QueueSubcommand::Id::selection) {
    return selection_request(*subcommand, words, options);
  }
  if (options.domain) return "--domain goes with queue hold, release, delete and requeue only";
  const std::size_t arguments = words.size() - 2;
  switch (subcommand->id) {
    case QueueSubcommand::Id::none:
      if (arguments != 0) return "queue " + name + " takes no arguments";
      return control::Request{subcommand->command, {}};
    case QueueSubcommand::Id::optional:
      if (arguments == 0) return control::Request{subcommand->command, {}};
      if (arguments != 1) return "queue " + name + " takes at most one queue ID";
      break;
    case QueueSubcommand::Id::required:
      if (arguments != 1) return "queue " + name + " takes one queue ID";
      break;
    case QueueSubcommand::Id::selection:
      break;
  }
  if (!control::is_message_id(words[2])) {
    return "'" + words[2] + "' is not a queue ID (lowercase hex digits, as in queue list)";
  }
  return control::Request{subcommand->command, words[2]};
}

// Reads the spool's quarantine/ folder directly: the reports are durable
// files, and they matter most when the daemon cannot start.
int list_damaged(const Config& config, std::ostream& out, std::ostream& err) {
  const auto folder = config.spool_directory / queue::quarantine_folder_name;
  const queue::QuarantineListing listing = queue::list_quarantine(folder);
  if (listing.error) {
    return fail(err, "cannot list " + folder.string() + ": " + listing.error.message());
  }
  for (const queue::DamagedRecord& damaged : listing.records) {
    out << "quarantine/" << damaged.file << ": " << queue::describe(damaged) << '\n';
  }
  for (const std::string& name : listing.unreported_files) {
    out << "quarantine/" << name << ": quarantined without a damage report\n";
  }
  out << std::flush;
  for (const std::string& problem : listing.problems) err << "stokenctl: " << problem << '\n';
  if (listing.records.empty() && listing.unreported_files.empty() && listing.problems.empty()) {
    err << "stokenctl: nothing in " << folder.string() << '\n';
  }
  return listing.problems.empty() ? exit_success : exit_failure;
}

}  // namespace

std::optional<std::string> check_queue_command(const std::vector<std::string>& words,
                                               const QueueOptions& options) {
  if (words.size() >= 2 && words[1] == "damaged") {
    if (words.size() != 2 || options.domain) return "queue damaged takes no arguments";
    return std::nullopt;
  }
  const auto request = queue_request(words, options);
  if (const auto* error = std::get_if<std::string>(&request)) return *error;
  return std::nullopt;
}

int run_queue_command(const Config& config, const std::vector<std::string>& words,
                      const QueueOptions& options, std::ostream& out, std::ostream& err) {
  if (words[1] == "damaged") return list_damaged(config, out, err);
  // check_queue_command() has passed it.
  const control::Request request = std::get<control::Request>(queue_request(words, options));
  std::string error;
  const auto answer = control::ask_daemon(config.control_socket, request, error);
  if (!answer) return fail(err, error);
  if (!answer->ok) {
    return fail(err, request.id.empty() ? answer->reason : request.id + ": " + answer->reason);
  }
  const bool data =
      request.command == control::Command::list || request.command == control::Command::show;
  (data ? out : err) << answer->body << std::flush;
  return exit_success;
}

}  // namespace stokend::admin
