// stokend: the daemon's command line.
//
//   stokend [--config FILE]        run in the foreground (default STOKEND_CONFIG_FILE:
//                                  etc/stokend.yaml, /etc/stokend/stokend.yaml installed)
//   stokend --check-config FILE    report every configuration error, exit 1 if any
//   stokend --version              print the version
#include <cstdio>
#include <cstring>
#include <string>

#include "daemon/run_daemon.h"
#include "mta/config/config.h"

namespace {

constexpr const char* usage =
    "usage: stokend [--config FILE]\n"
    "       stokend --check-config FILE\n"
    "       stokend --version\n"
    "\n"
    "Runs the stokend SMTP relay in the foreground, logging to standard error\n"
    "(or log_file). Default configuration: " STOKEND_CONFIG_FILE ".\n";

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
  auto result = stokend::load_config(config_file);
  if (!result.config) {
    if (result.errors.empty()) std::fprintf(stderr, "%s: cannot load\n", config_file.c_str());
    report_errors(result);
    return 1;
  }
  if (check_only) {
    std::printf("%s: configuration ok\n", config_file.c_str());
    return 0;
  }
  return stokend::run_daemon(*result.config);
}
