// See startup.h.
#include "daemon/startup.h"

#include <event2/thread.h>
#include <signal.h>
#include <sodium.h>
#include <spdlog/sinks/stdout_sinks.h>
#include <spdlog/spdlog.h>

#include <cstdio>
#include <vector>

#include "common/durable_file.h"
#include "common/service_log.h"
#include "daemon/log_file.h"
#include "daemon/log_pattern.h"
#include "daemon/syslog_sink.h"
#include "mta/defaults.h"

namespace stokend::wiring {

bool setup_logging(const Config& config) {
  std::vector<spdlog::sink_ptr> sinks;
  std::unique_ptr<spdlog::formatter> stderr_format;
  try {
    if (!config.log_file.empty()) sinks.push_back(open_log_file(config.log_file));
  } catch (const spdlog::spdlog_ex& error) {
    std::fprintf(stderr, "stokend: log_file %s: %s\n", config.log_file.c_str(), error.what());
    return false;
  }
  if (config.log_syslog) {
    std::string error;
    auto sink = make_syslog_sink(config.log_syslog_socket, defaults::syslog_send_timeout,
                                 defaults::syslog_max_line, error);
    if (!sink) {
      std::fprintf(stderr, "stokend: %s\n", error.c_str());
      return false;
    }
    sinks.push_back(std::move(sink));
  }
  if (sinks.empty()) {
    sinks.push_back(std::make_shared<spdlog::sinks::stderr_sink_mt>());
    // The journal stamps each line itself: no time or host twice.
    if (stderr_is_journal()) stderr_format = journal_formatter();
  }
  auto logger = std::make_shared<spdlog::logger>("stokend", sinks.begin(), sinks.end());
  // Each sink keeps its own formatter: the syslog sink writes its own frame.
  for (const auto& sink : sinks) sink->set_formatter(file_formatter(config.hostname));
  if (stderr_format) sinks.front()->set_formatter(std::move(stderr_format));
  logger->set_level(spdlog::level::from_str(config.log_level));
  logger->flush_on(spdlog::level::info);
  spdlog::set_default_logger(logger);
  install_service_loggers(*logger);
  return true;
}

bool prepare_process() {
  if (sodium_init() < 0) {
    spdlog::critical("libsodium failed to initialise");
    return false;
  }
  evthread_use_pthreads();
  signal(SIGPIPE, SIG_IGN);
  // Until the loop watches them (operator_signals.h), an operator's signal
  // must not stop a daemon that is still starting.
  for (int signal_number : {SIGHUP, SIGUSR1, SIGUSR2}) signal(signal_number, SIG_IGN);
  return true;
}

bool make_data_directories(const Config& config) {
  for (const auto& directory : {config.spool_directory, config.maildir_root}) {
    if (auto error = durable::make_directories(directory)) {
      spdlog::critical("cannot create {}: {}", directory.string(), error.message());
      return false;
    }
  }
  return true;
}

bool lock_spool(const Config& config, queue::SpoolLock& lock) {
  if (auto error = lock.acquire(config.spool_directory); !error.empty()) {
    spdlog::critical("{}", error);
    return false;
  }
  return true;
}

EventBasePtr make_event_base() {
  EventBasePtr base(event_base_new());
  if (!base) spdlog::critical("cannot create the event loop");
  return base;
}

std::unique_ptr<addresses::AliasFile> load_aliases(const Config& config, bool& failed) {
  failed = false;
  if (config.aliases.empty()) return nullptr;
  auto aliases = std::make_unique<addresses::AliasFile>(config.aliases);
  const auto errors = aliases->load(config.recipient_delimiter);
  for (const std::string& error : errors) spdlog::critical("aliases: {}", error);
  failed = !errors.empty();
  if (failed) return nullptr;
  spdlog::info("{} aliases in {}", aliases->map().size(), config.aliases.string());
  for (const std::string& problem : aliases->describe_problems()) spdlog::warn("{}", problem);
  return aliases;
}

std::unique_ptr<UserDirectory> load_users(const Config& config) {
  auto users = std::make_unique<UserDirectory>(config.users_file);
  if (auto error = users->load()) {
    spdlog::critical("{}", *error);
    return nullptr;
  }
  spdlog::info("{} local users in {}", users->all().size(), config.users_file.string());
  return users;
}

}  // namespace stokend::wiring
