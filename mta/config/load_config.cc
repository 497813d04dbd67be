// Loading stokend.yaml into a Config: parse, check every value, collect every error.
//
// Contract (config.h): load_config() reports every problem in the file, each
// at the FILE:LINE:COL of the offending key or value, so an operator fixes
// them all in one pass; a Config is returned only when there are none. Keys
// that are absent keep the defaults of defaults.h. The one exception to
// "every error" is a YAML syntax error: the parser cannot go on after it, so
// it is reported alone. This file reads the top level and hands each section
// to its reader (config_reader.h).
#include <unistd.h>

#include <algorithm>
#include <array>
#include <fstream>
#include <sstream>
#include <utility>

#include "mta/config/config.h"
#include "mta/config/config_reader.h"
#include "mta/config/yaml_syntax.h"

namespace stokend {
namespace config_reading {
namespace {

constexpr std::array log_levels = {"trace", "debug", "info", "warn", "error", "critical", "off"};

// Upper bound on worker_threads: more is certainly a typo, and each thread
// may hold a password hash's 64 MiB of memory.
constexpr std::uint64_t max_worker_threads = 1024;

}  // namespace

void ConfigReader::read_log_level(const Field& field, Config& config) {
  const auto level = read_string(field);
  if (!level) return;
  if (std::find(log_levels.begin(), log_levels.end(), *level) == log_levels.end()) {
    std::string expected;
    for (const char* known : log_levels)
      expected += (expected.empty() ? "" : ", ") + std::string(known);
    error_at(field.value_mark(),
             field.setting + ": unknown level '" + *level + "' (expected one of " + expected + ")");
    return;
  }
  config.log_level = *level;
}

void ConfigReader::read_document(const YAML::Node& root, Config& config) {
  // An empty file has no position; point missing keys at its start.
  YAML::Mark start;
  start.line = 0;
  start.column = 0;
  const YAML::Mark root_mark = root.Mark().is_null() ? start : root.Mark();

  auto path_setting = [this](std::filesystem::path& target) {
    return [this, &target](const Field& field) {
      if (const auto path = read_path(field, false)) target = *path;
    };
  };
  read_map(
      root, "", root_mark,
      {{"hostname", [&](const Field& field) { read_hostname(field, config); }},
       {"local_domains", [&](const Field& field) { read_local_domains(field, config); }},
       {"users_file", path_setting(config.users_file)},
       {"recipient_delimiter",
        [&](const Field& field) {
          // Characters a local part may hold unquoted (RFC 5321 §4.1.2
          // atext), except those that end it or begin a comment.
          const auto delimiters = read_string(field);
          if (!delimiters) return;
          constexpr std::string_view allowed = "+-=_.#$%&'*/?^`{|}~!";
          if (delimiters->size() > 8 ||
              delimiters->find_first_not_of(allowed) != std::string::npos) {
            error_at(field.value_mark(), field.setting + ": at most 8 of the characters " +
                                             std::string(allowed) + ", got '" + *delimiters + "'");
            return;
          }
          config.recipient_delimiter = *delimiters;
        }},
       {"aliases", path_setting(config.aliases)},
       {"spool_directory", path_setting(config.spool_directory)},
       {"maildir_root", path_setting(config.maildir_root)},
       {"control_socket", path_setting(config.control_socket)},
       {"listeners", [&](const Field& field) { read_listeners(field, config); }},
       {"tls", [&](const Field& field) { read_tls(field, config.tls); }},
       {"limits", [&](const Field& field) { read_limits(field, config.limits); }},
       {"timeouts", [&](const Field& field) { read_timeouts(field, config.timeouts); }},
       {"queue", [&](const Field& field) { read_queue(field, config.queue); }},
       {"dns", [&](const Field& field) { read_dns(field, config.dns); }},
       {"routes", [&](const Field& field) { read_routes(field, config); }},
       {"tls_policies", [&](const Field& field) { read_tls_policies(field, config); }},
       {"tokens", [&](const Field& field) { read_tokens(field, config.tokens); }},
       {"delivery", [&](const Field& field) { read_delivery(field, config.delivery); }},
       {"fast_lane", [&](const Field& field) { read_fast_lane(field, config.fast_lane); }},
       {"recipient_probe", [&](const Field& field) { read_recipient_probe(field, config); }},
       {"metrics", [&](const Field& field) { read_metrics(field, config.metrics); }},
       {"auth", [&](const Field& field) { read_auth(field, config.auth); }},
       {"milters", [&](const Field& field) { read_milters(field, config); }},
       {"normalise_bare_line_endings", boolean_into(config.normalise_bare_line_endings)},
       {"nul_octets",
        [&](const Field& field) {
          if (const auto policy = read_choice<NulOctets>(
                  field, "value", {{"reject", NulOctets::reject}, {"strip", NulOctets::strip}})) {
            config.nul_octets = *policy;
          }
        }},
       {"worker_threads",
        [&](const Field& field) {
          const auto threads = read_positive_integer(field);
          if (!threads) return;
          if (*threads > max_worker_threads) {
            error_at(field.value_mark(), field.setting + ": at most " +
                                             std::to_string(max_worker_threads) + ", got " +
                                             std::to_string(*threads));
            return;
          }
          config.worker_threads = static_cast<unsigned>(*threads);
        }},
       {"log_level", [&](const Field& field) { read_log_level(field, config); }},
       {"user", [&](const Field& field) { read_account(field, config.user, false); }},
       {"group", [&](const Field& field) { read_account(field, config.group, true); }},
       {"allow_root", boolean_into(config.allow_root)},
       {"maildir", [&](const Field& field) { read_maildir_permissions(field, config.maildir); }},
       {"log_file",
        [&](const Field& field) {
          if (const auto path = read_path(field, true)) config.log_file = *path;
        }},
       {"log_syslog", boolean_into(config.log_syslog)},
       {"log_syslog_socket", path_setting(config.log_syslog_socket)}},
      {"local_domains", "listeners"});
  check_recipient_probe_domains(config);
  attach_relay_credentials(config);
  check_metrics_endpoint(config);
  check_auth_routes(config);
  // After the whole file: spool_directory may come after the tokens section.
  if (config.tokens.store.empty()) {
    config.tokens.store = config.spool_directory / defaults::token_store_file_name;
  }
  if (config.tokens.secrets_file.empty()) {
    config.tokens.secrets_file = config.spool_directory / defaults::token_secrets_file_name;
  }
  // Likewise limits may come after queue.
  if (!config.queue.min_free_space) {
    config.queue.min_free_space = queue::defaults::min_free_space(config.limits.max_message_size);
  }
}

}  // namespace config_reading

namespace {

// The machine's name, for a config that leaves hostname empty.
std::optional<std::string> system_hostname() {
  std::array<char, 256> name{};
  if (::gethostname(name.data(), name.size() - 1) != 0 || name[0] == '\0') return std::nullopt;
  return std::string(name.data());
}

}  // namespace

bool Config::is_local_domain(std::string_view domain) const {
  const std::string lowered = ascii_lowercase(domain);
  return std::find(local_domains.begin(), local_domains.end(), lowered) != local_domains.end();
}

bool RecipientProbeConfig::probes(std::string_view domain) const {
  const std::string lowered = ascii_lowercase(domain);
  return std::find(domains.begin(), domains.end(), lowered) != domains.end();
}

std::string ConfigError::to_string() const {
  std::string text = file;
  if (line > 0) {
    text += ":" + std::to_string(line);
    if (column > 0) text += ":" + std::to_string(column);
  }
  return text + ": " + message;
}

ConfigLoadResult load_config(const std::filesystem::path& file) {
  const std::string file_name = file.string();
  ConfigLoadResult result;

  // Checked first because a folder opens as a stream and reads as empty.
  if (const auto reason = config_reading::unreadable_reason(file)) {
    result.errors.push_back({file_name, 0, 0, "cannot read the configuration: " + *reason});
    return result;
  }
  std::ifstream stream(file, std::ios::binary);
  std::ostringstream contents;
  contents << stream.rdbuf();
  if (stream.bad()) {
    result.errors.push_back({file_name, 0, 0, "cannot read the configuration: read error"});
    return result;
  }

  YAML::Node root;
  try {
    root = YAML::Load(contents.str());
  } catch (const YAML::ParserException& syntax_error) {
    ConfigError error{file_name, 0, 0, "YAML syntax error: " + syntax_error.msg};
    if (auto place = config_reading::locate_syntax_error(contents.str(), syntax_error.msg)) {
      error = {file_name, place->line, place->column, std::move(place->message)};
    } else if (!syntax_error.mark.is_null()) {
      error.line = syntax_error.mark.line + 1;
      error.column = syntax_error.mark.column + 1;
    }
    result.errors.push_back(std::move(error));
    return result;
  } catch (const YAML::Exception& other) {
    result.errors.push_back({file_name, 0, 0, other.what()});
    return result;
  }

  Config config;
  config.source_file = file;
  config_reading::ConfigReader reader(file_name);
  reader.read_document(root, config);
  result.errors = reader.take_errors();
  // In file order, however the checks happened to run.
  std::stable_sort(result.errors.begin(), result.errors.end(),
                   [](const ConfigError& left, const ConfigError& right) {
                     return std::pair(left.line, left.column) < std::pair(right.line, right.column);
                   });

  if (result.errors.empty() && config.hostname.empty()) {
    if (const auto name = system_hostname()) {
      config.hostname = *name;
    } else {
      result.errors.push_back(
          {file_name, 0, 0, "hostname is not set and the system host name is unavailable"});
    }
  }
  if (result.errors.empty()) result.config = std::move(config);
  return result;
}

}  // namespace stokend
