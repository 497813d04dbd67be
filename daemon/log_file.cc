// See log_file.h.
#include "daemon/log_file.h"

#include <spdlog/details/file_helper.h>
#include <spdlog/sinks/base_sink.h>

#include <mutex>

namespace stokend::wiring {
namespace {

// Log lines name clients, addresses and logins: readable by the owner and
// its group (adm, for log readers), never by everyone, whatever the umask
// or a log rotator left.
void restrict_mode(const std::filesystem::path& path) {
  std::error_code ignored;
  std::filesystem::permissions(path,
                               std::filesystem::perms::owner_read |
                                   std::filesystem::perms::owner_write |
                                   std::filesystem::perms::group_read,
                               ignored);
}

class ReopenableFileSink final : public spdlog::sinks::base_sink<std::mutex> {
 public:
  explicit ReopenableFileSink(const std::filesystem::path& path) {
    file_.open(path.string());
    restrict_mode(path);
  }

  std::optional<std::string> reopen() {
    std::lock_guard<std::mutex> lock(mutex_);
    try {
      // A new file_helper first: if the open fails, the old file stays.
      spdlog::details::file_helper reopened;
      reopened.open(file_.filename());
      file_.close();
      file_.open(reopened.filename());
      restrict_mode(reopened.filename());
      return std::nullopt;
    } catch (const spdlog::spdlog_ex& error) {
      return std::string(error.what());
    }
  }

 protected:
  void sink_it_(const spdlog::details::log_msg& message) override {
    spdlog::memory_buf_t formatted;
    formatter_->format(message, formatted);
    file_.write(formatted);
  }
  void flush_() override { file_.flush(); }

 private:
  spdlog::details::file_helper file_;
};

// The one log file of the process (the daemon logs through one logger).
std::shared_ptr<ReopenableFileSink>& current_sink() {
  static std::shared_ptr<ReopenableFileSink> sink;
  return sink;
}

}  // namespace

std::shared_ptr<spdlog::sinks::sink> open_log_file(const std::filesystem::path& path) {
  current_sink() = std::make_shared<ReopenableFileSink>(path);
  return current_sink();
}

std::optional<std::string> reopen_log_file() {
  if (!current_sink()) return std::nullopt;
  return current_sink()->reopen();
}

}  // namespace stokend::wiring
