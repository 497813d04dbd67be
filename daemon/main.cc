// stokend: the daemon's command line.
//
//   stokend [--config FILE]        run in the foreground (default STOKEND_CONFIG_FILE:
//                                  etc/stokend.yaml, /etc/stokend/stokend.yaml installed)
//   stokend --check-config FILE    report every configuration error (and a users file or
//                                  token secrets file the daemon would refuse), exit 1 if any
//   stokend --version              print the version
#include <spdlog/spdlog.h>

#include <cstdio>
#include <cstring>
#include <exception>
#include <filesystem>
#include <string>
#include <system_error>

#include "daemon/run_daemon.h"
#include "mta/addresses/alias_file.h"
#include "mta/config/config.h"
#include "mta/users.h"
#include "tokens/secret_rings.h"

namespace {

constexpr const char* usage =
    "usage: stokend [--config FILE]\n"
    "       stokend --check-config FILE\n"
    "       stokend --version\n"
    "\n"
    "Runs the stokend SMTP relay in the foreground, logging to standard error\n"
    "(or log_file). Default configuration: " STOKEND_CONFIG_FILE ".\n";

int run(const std::string& config_file, bool check_only);

// The files the configuration names that the daemon reads at start and
// refuses to start without: the users file and the token secrets, when
// they exist (missing ones are created). Prints each problem; false if any.
bool check_data_files(const stokend::Config& config) {
  bool ok = true;
  stokend::UserDirectory users(config.users_file);
  if (auto error = users.load()) {
    std::fprintf(stderr, "users_file: %s\n", error->c_str());
    ok = false;
  }
  if (!config.aliases.empty()) {
    stokend::addresses::AliasFile aliases(config.aliases);
    for (const std::string& error : aliases.load(config.recipient_delimiter)) {
      std::fprintf(stderr, "aliases: %s\n", error.c_str());
      ok = false;
    }
    // A loop is reported but does not stop the daemon: those addresses
    // are deferred (451) until the map is mended.
    for (const std::string& problem : aliases.describe_problems()) {
      std::fprintf(stderr, "aliases: warning: %s\n", problem.c_str());
    }
  }
  std::error_code status_error;
  if (std::filesystem::exists(config.tokens.secrets_file, status_error)) {
    try {
      stokend::tokens::SecretRings::load(config.tokens.secrets_file.string());
    } catch (const std::exception& error) {
      std::fprintf(stderr, "tokens.secrets_file: %s\n", error.what());
      ok = false;
    }
  }
  return ok;
}

int report_errors(const stokend::ConfigLoadResult& result) {
  for (const auto& error : result.errors) std::fprintf(stderr, "%s\n", error.to_string().c_str());
  return result.errors.empty() ? 0 : 1;
}

}  // namespace

int main(int argc, char** argv) {
  std::string config_file = STOKEND_CONFIG_FILE;
  bool check_only = false;
  for (int i = 1; i < argc; ++i) {
    std::string argument = argv[i];
    if ((argument == "--config" || argument == "--check-config") && i + 1 < argc) {
      check_only = argument == "--check-config";
      config_file = argv[++i];
    } else if (argument == "--version") {
      std::printf("stokend %s\n", STOKEND_VERSION);
      return 0;
    } else if (argument == "--help" || argument == "-h") {
      std::fputs(usage, stdout);
      return 0;
    } else {
      std::fprintf(stderr, "stokend: unknown argument '%s'\n%s", argument.c_str(), usage);
      return 2;
    }
  }
  // Nothing may end the daemon with an uncaught exception (an abort): a
  // component that throws while it is built is one line and status 1.
  try {
    return run(config_file, check_only);
  } catch (const std::exception& error) {
    // Once logging is set up, the line goes where the operator reads them.
    if (auto logger = spdlog::get("stokend")) {
      logger->critical("fatal error: {}", error.what());
    } else {
      std::fprintf(stderr, "stokend: fatal error: %s\n", error.what());
    }
  } catch (...) {
    std::fprintf(stderr, "stokend: fatal error of unknown kind\n");
  }
  return 1;
}

namespace {

int run(const std::string& config_file, bool check_only) {
  auto result = stokend::load_config(config_file);
  if (!result.config) {
    if (result.errors.empty()) std::fprintf(stderr, "%s: cannot load\n", config_file.c_str());
    report_errors(result);
    return 1;
  }
  if (check_only) {
    if (!check_data_files(*result.config)) return 1;
    std::printf("%s: configuration ok\n", config_file.c_str());
    return 0;
  }
  return stokend::run_daemon(*result.config);
}

}  // namespace
