// See service_log.h.
#include "common/service_log.h"

#include <array>
#include <memory>
#include <string>

namespace stokend {
namespace {

constexpr std::array<std::string_view, service_count> names = {"smtpd", "cleanup", "qmgr",  "smtp",
                                                               "lmtp",  "local",   "bounce"};

// Written once at start-up, before other threads exist; read-only afterwards.
std::array<std::shared_ptr<spdlog::logger>, service_count>& loggers() {
  static std::array<std::shared_ptr<spdlog::logger>, service_count> installed;
  return installed;
}

}  // namespace

std::string_view service_name(Service service) { return names[static_cast<std::size_t>(service)]; }

spdlog::logger& service_log(Service service) {
  if (const auto& logger = loggers()[static_cast<std::size_t>(service)]) return *logger;
  return *spdlog::default_logger_raw();
}

void install_service_loggers(spdlog::logger& base) {
  for (std::size_t i = 0; i < service_count; ++i) {
    loggers()[i] = base.clone("stokend/" + std::string(names[i]));
  }
}

}  // namespace stokend
