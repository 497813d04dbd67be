// See log_pattern.h.
#include "daemon/log_pattern.h"

#include <spdlog/pattern_formatter.h>
#include <sys/stat.h>

#include <cstdio>
#include <cstdlib>

namespace stokend::wiring {
namespace {

// %& in a pattern: level_prefix() of the line.
class LevelPrefixFlag final : public spdlog::custom_flag_formatter {
 public:
  void format(const spdlog::details::log_msg& message, const std::tm&,
              spdlog::memory_buf_t& destination) override {
    const std::string_view prefix = level_prefix(message.level);
    destination.append(prefix.data(), prefix.data() + prefix.size());
  }
  std::unique_ptr<custom_flag_formatter> clone() const override {
    return std::make_unique<LevelPrefixFlag>();
  }
};

// %* in a pattern: "<N>", the line's syslog severity for the journal.
class SeverityFlag final : public spdlog::custom_flag_formatter {
 public:
  void format(const spdlog::details::log_msg& message, const std::tm&,
              spdlog::memory_buf_t& destination) override {
    const std::string text = "<" + std::to_string(syslog_severity(message.level)) + ">";
    destination.append(text.data(), text.data() + text.size());
  }
  std::unique_ptr<custom_flag_formatter> clone() const override {
    return std::make_unique<SeverityFlag>();
  }
};

std::unique_ptr<spdlog::formatter> make(const std::string& pattern) {
  auto formatter = std::make_unique<spdlog::pattern_formatter>();
  formatter->add_flag<LevelPrefixFlag>('&').add_flag<SeverityFlag>('*').set_pattern(pattern);
  return formatter;
}

}  // namespace

std::string_view level_prefix(spdlog::level::level_enum level) {
  switch (level) {
    case spdlog::level::trace:
    case spdlog::level::debug:
      return "debug: ";
    case spdlog::level::warn:
      return "warning: ";
    case spdlog::level::err:
      return "error: ";
    case spdlog::level::critical:
      return "fatal: ";
    default:
      return "";
  }
}

int syslog_severity(spdlog::level::level_enum level) {
  switch (level) {
    case spdlog::level::trace:
    case spdlog::level::debug:
      return 7;
    case spdlog::level::warn:
      return 4;
    case spdlog::level::err:
      return 3;
    case spdlog::level::critical:
      return 2;
    default:
      return 6;
  }
}

std::unique_ptr<spdlog::formatter> file_formatter(const std::string& hostname) {
  // The host name is checked as a domain name by the configuration: no '%'.
  return make("%Y-%m-%dT%H:%M:%S.%e%z " + hostname + " %n[%P]: %&%v");
}

std::unique_ptr<spdlog::formatter> journal_formatter() { return make("%*%n[%P]: %&%v"); }

bool stderr_is_journal() {
  const char* stream = std::getenv("JOURNAL_STREAM");
  if (!stream) return false;
  unsigned long long device = 0;
  unsigned long long inode = 0;
  if (std::sscanf(stream, "%llu:%llu", &device, &inode) != 2) return false;
  struct stat status {};
  if (::fstat(2, &status) != 0) return false;
  return static_cast<unsigned long long>(status.st_dev) == device &&
         static_cast<unsigned long long>(status.st_ino) == inode;
}

}  // namespace stokend::wiring
