// stokenctl's contacts commands; see contacts_admin.h.
#include "admin/contacts_admin.h"

#include <algorithm>
#include <exception>
#include <filesystem>
#include <fstream>
#include <map>
#include <set>
#include <sstream>

#include "message/address.h"
#include "message/mbox.h"
#include "mta/store/contacts_folder.h"
#include "mta/store/maildir_layout.h"
#include "mta/store/token_store_setup.h"
#include "mta/users.h"
#include "tokens/coi_contact_import.h"
#include "tokens/coi_contact_message.h"
#include "tokens/pair_hash.h"
#include "tokens/secret_rings.h"
#include "tokens/token_authority.h"

namespace stokend::admin {
namespace {

namespace fs = std::filesystem;

constexpr int exit_success = 0;
constexpr int exit_failure = 1;

int fail(std::ostream& err, const std::string& message) {
  err << "stokenctl: " << message << '\n';
  return exit_failure;
}

std::string plural(std::size_t count, const std::string& noun) {
  return std::to_string(count) + " " + noun + (count == 1 ? "" : "s");
}

// The address as the store keeps it, or nullopt when it is not one.
std::optional<std::string> normalized_address(const std::string& text) {
  const auto mailbox = message::parse_mailbox(text);
  if (!mailbox || mailbox->domain.empty()) return std::nullopt;
  return tokens::normalize_address(mailbox->to_string());
}

std::optional<std::string> read_file(const fs::path& path, std::string& text) {
  std::ifstream input(path, std::ios::binary);
  if (!input) return path.string() + ": cannot open";
  std::ostringstream contents;
  contents << input.rdbuf();
  if (input.bad()) return path.string() + ": cannot read";
  text = contents.str();
  return std::nullopt;
}

// The messages named on the command line: a Maildir folder's, an mbox
// file's, or one message file.
std::optional<std::string> read_sources(const fs::path& path,
                                        std::vector<tokens::ContactSource>& sources,
                                        std::ostream& err) {
  std::error_code error;
  if (fs::is_directory(path, error)) {
    if (!store::is_maildir(path)) {
      return path.string() + " is not a Maildir folder (it has neither cur/ nor new/)";
    }
    store::MaildirRead read = store::read_maildir_messages(path);
    for (const std::string& problem : read.problems) err << "stokenctl: " << problem << '\n';
    for (store::MaildirMessage& message : read.messages) {
      sources.push_back(tokens::ContactSource{fs::relative(message.path, path).string(),
                                              std::move(message.text)});
    }
    return std::nullopt;
  }
  std::string text;
  if (auto problem = read_file(path, text)) return problem;
  if (!message::looks_like_mbox(text)) {
    sources.push_back(tokens::ContactSource{path.string(), std::move(text)});
    return std::nullopt;
  }
  std::size_t number = 0;
  for (std::string& message : message::split_mbox(text)) {
    sources.push_back(tokens::ContactSource{path.string() + " message " + std::to_string(++number),
                                            std::move(message)});
  }
  return std::nullopt;
}

void print_notes(std::ostream& out, std::string_view status,
                 const std::vector<tokens::ContactImportNote>& notes) {
  for (const tokens::ContactImportNote& note : notes) {
    out << status << "  " << note.source << ": " << note.what << ": " << note.reason << '\n';
  }
}

int import_contacts(const Config& config, const std::vector<std::string>& words,
                    const ContactsOptions& options, std::ostream& out, std::ostream& err) {
  UserDirectory users(config.users_file);
  if (const auto error = users.load()) return fail(err, *error);
  std::optional<std::string> user;
  if (options.user) {
    user = normalized_address(*options.user);
    if (!user) return fail(err, "'" + *options.user + "' is not a valid address (--user)");
    if (users.find(*user) == nullptr) {
      return fail(err, *user + " is not a user in " + config.users_file.string());
    }
  }
  std::vector<tokens::ContactSource> sources;
  if (auto problem = read_sources(words[2], sources, err)) return fail(err, *problem);

  const std::int64_t now = tokens::TokenAuthority::system_clock();
  const tokens::SecretRings rings =
      tokens::SecretRings::load_or_create(config.tokens.secrets_file.string(), now);
  // Through the contacts folder mirror: what the import changes reaches the
  // user's COI/Contacts folder as any other token change does.
  const std::unique_ptr<tokens::TokenStore> store = open_token_store(config);
  const tokens::TokenAuthority authority(rings, *store, token_policy_of(config));
  tokens::ContactImportOptions import_options;
  import_options.now = now;
  import_options.clock_skew = config.tokens.clock_skew;
  import_options.user = user;
  import_options.is_local_user = [&users](std::string_view address) {
    return users.find(address) != nullptr;
  };
  import_options.restore_issued = options.restore_issued;

  // Everything is checked before anything is written.
  const tokens::ContactImportPlan plan =
      tokens::plan_contact_import(sources, authority, *store, import_options);
  const tokens::ContactImportResult result = tokens::apply_contact_import(plan, *store);

  print_notes(out, "imported ", result.imported);
  print_notes(out, "unchanged", plan.unchanged);
  print_notes(out, "unchanged", result.unchanged);
  print_notes(out, "skipped  ", plan.skipped);
  out << "contacts import: " << plural(sources.size(), "message") << " read, "
      << plural(plan.messages, "contact message") << "; " << plural(result.wallet_added, "token")
      << " into wallets, " << plural(result.issued_restored, "issued token") << " restored, "
      << plan.unchanged.size() + result.unchanged.size() << " unchanged, " << plan.skipped.size()
      << " skipped\n";
  return exit_success;
}

int export_contacts(const Config& config, const std::vector<std::string>& words, std::ostream& out,
                    std::ostream& err) {
  const auto user = normalized_address(words[2]);
  if (!user) return fail(err, "'" + words[2] + "' is not a valid address (USER)");
  UserDirectory users(config.users_file);
  if (const auto error = users.load()) return fail(err, *error);
  if (users.find(*user) == nullptr) {
    return fail(err, *user + " is not a user in " + config.users_file.string());
  }
  const std::unique_ptr<tokens::TokenStore> opened = open_backend_token_store(config);
  tokens::TokenStore& store = *opened;
  const std::int64_t now = tokens::TokenAuthority::system_clock();

  // One message per contact address, the tokens of both directions in it.
  std::map<std::string, tokens::ContactContent> contacts;
  const auto contact = [&](const std::string& remote) -> tokens::ContactContent& {
    auto [entry, inserted] = contacts.try_emplace(remote);
    if (inserted) entry->second = tokens::ContactContent{*user, {remote}, {}, {}, {}};
    return entry->second;
  };
  std::vector<tokens::IssuedToken> issued = store.list_issued(*user);
  std::sort(issued.begin(), issued.end(),
            [](const auto& a, const auto& b) { return a.created < b.created; });
  for (const tokens::IssuedToken& token : issued) {
    if (token.expires > now) contact(token.remote_address).tokens_in.push_back(token.token);
  }
  for (const tokens::WalletToken& token : store.list_wallet(*user)) {
    if (token.expires > now) contact(token.remote_address).tokens_out.push_back(token.token);
  }
  for (const auto& [remote, content] : contacts) {
    out << message::mbox_entry(*user, now,
                               tokens::render_contact_message(content, now, config.hostname));
  }
  err << plural(contacts.size(), "contact") << " of " << *user << " exported\n";
  return exit_success;
}

// The contact addresses a user's folder names in its messages' bodies:
// contacts whose tokens are gone from the store still get their messages
// cleaned up.
std::set<std::string> addresses_in_folder(const Config& config, const std::string& user) {
  std::set<std::string> addresses;
  const auto mailbox = builtin_maildir_mailbox(config, RouteTable(config.routes), user);
  if (!mailbox) return addresses;
  const fs::path folder = *mailbox / store::contacts_folder_name;
  if (!store::is_maildir(folder)) return addresses;
  for (const store::MaildirMessage& message : store::read_maildir_messages(folder).messages) {
    const auto parsed = tokens::parse_contact_message(message.text);
    if (parsed.contact)
      addresses.insert(parsed.contact->addresses.begin(), parsed.contact->addresses.end());
  }
  return addresses;
}

int sync_contacts(const Config& config, const std::vector<std::string>& words, std::ostream& err) {
  UserDirectory users(config.users_file);
  if (const auto error = users.load()) return fail(err, *error);
  std::vector<std::string> selected;
  if (words.size() > 2) {
    const auto user = normalized_address(words[2]);
    if (!user) return fail(err, "'" + words[2] + "' is not a valid address (USER)");
    if (users.find(*user) == nullptr) {
      return fail(err, *user + " is not a user in " + config.users_file.string());
    }
    selected.push_back(*user);
  } else {
    for (const User& user : users.all()) selected.push_back(user.address);
  }
  if (!config.tokens.sync_contacts_folder) {
    err << "stokenctl: tokens.sync_contacts_folder is off: the daemon will not keep the "
           "folders in step\n";
  }
  const RouteTable routes(config.routes);
  const std::unique_ptr<store::ContactsFolderSync> store = open_synced_token_store(config);
  std::size_t failures = 0;
  for (const std::string& user : selected) {
    if (!builtin_maildir_mailbox(config, routes, user)) {
      err << user << ": mail not in the built-in Maildir store, skipped\n";
      continue;
    }
    std::set<std::string> remotes = addresses_in_folder(config, user);
    for (const tokens::IssuedToken& token : store->list_issued(user)) {
      remotes.insert(token.remote_address);
    }
    for (const tokens::WalletToken& token : store->list_wallet(user)) {
      remotes.insert(token.remote_address);
    }
    for (const std::string& remote : remotes) {
      if (const std::string error = store->sync_contact(user, remote); !error.empty()) {
        err << "stokenctl: " << user << ": contact " << remote << ": " << error << '\n';
        ++failures;
      }
    }
    err << user << ": " << plural(remotes.size(), "contact") << " checked\n";
  }
  return failures == 0 ? exit_success : exit_failure;
}

}  // namespace

std::optional<std::string> check_contacts_command(const std::vector<std::string>& words,
                                                  const ContactsOptions& options) {
  if (words.size() < 2) return "'contacts' needs a subcommand: import, export or sync";
  const std::string& subcommand = words[1];
  const std::size_t arguments = words.size() - 2;
  if ((options.user || options.restore_issued) && subcommand != "import") {
    return "--user and --restore-issued go with contacts import only";
  }
  if (subcommand == "import") {
    if (arguments != 1) {
      return "usage: contacts import FILE|MAILDIR-FOLDER [--user ADDRESS] [--restore-issued]";
    }
  } else if (subcommand == "export") {
    if (arguments != 1) return "usage: contacts export USER";
  } else if (subcommand == "sync") {
    if (arguments > 1) return "usage: contacts sync [USER]";
  } else {
    return "unknown subcommand 'contacts " + subcommand + "'";
  }
  return std::nullopt;
}

int run_contacts_command(const Config& config, const std::vector<std::string>& words,
                         const ContactsOptions& options, std::ostream& out, std::ostream& err) {
  try {
    const std::string& subcommand = words[1];
    if (subcommand == "import") return import_contacts(config, words, options, out, err);
    if (subcommand == "export") return export_contacts(config, words, out, err);
    return sync_contacts(config, words, err);
  } catch (const std::exception& error) {
    return fail(err, error.what());
  }
}

}  // namespace stokend::admin
