// See startup.h.
#include "daemon/startup.h"

#include <event2/thread.h>
#include <signal.h>
#include <sodium.h>
#include <spdlog/sinks/stdout_sinks.h>
#include <spdlog/spdlog.h>

#include "common/durable_file.h"
#include "daemon/log_file.h"

namespace stokend::wiring {

void setup_logging(const Config& config) {
  std::shared_ptr<spdlog::logger> logger;
  if (config.log_file.empty()) {
    logger = spdlog::stderr_logger_mt("stokend");
  } else {
    logger = std::make_shared<spdlog::logger>("stokend", open_log_file(config.log_file));
  }
  logger->set_pattern("%Y-%m-%dT%H:%M:%S.%e%z %l %v");
  logger->set_level(spdlog::level::from_str(config.log_level));
  logger->flush_on(spdlog::level::info);
  spdlog::set_default_logger(logger);
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
