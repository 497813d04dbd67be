// See syslog_sink.h.
#include "daemon/syslog_sink.h"

#include <spdlog/sinks/base_sink.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <ctime>
#include <mutex>

#include "common/unique_fd.h"
#include "daemon/log_pattern.h"

namespace stokend::wiring {
namespace {

constexpr int facility_mail = 2;  // RFC 5424 §6.2.1

class SyslogSink final : public spdlog::sinks::base_sink<std::mutex> {
 public:
  SyslogSink(UniqueFd socket, sockaddr_un address, std::size_t max_line)
      : socket_(std::move(socket)), address_(address), max_line_(max_line) {}

 protected:
  void sink_it_(const spdlog::details::log_msg& message) override {
    // RFC 3164 §4.1: PRI, TIMESTAMP (local time, "Mmm dd hh:mm:ss"), TAG.
    const std::time_t seconds = std::chrono::system_clock::to_time_t(message.time);
    std::tm local{};
    localtime_r(&seconds, &local);
    char timestamp[32];
    std::strftime(timestamp, sizeof timestamp, "%b %e %H:%M:%S", &local);
    std::string line = "<" + std::to_string(facility_mail * 8 + syslog_severity(message.level)) +
                       ">" + timestamp + " ";
    line.append(message.logger_name.data(), message.logger_name.size());
    line += "[" + std::to_string(::getpid()) + "]: ";
    line += level_prefix(message.level);
    line.append(message.payload.data(), message.payload.size());
    if (line.size() > max_line_) line.resize(max_line_);
    // Dropped when nobody listens or the listener stays full (syslog_sink.h).
    // Once a line waited the whole send timeout, the next ones do not wait
    // at all until one gets through again: a stuck syslog costs the daemon
    // one timeout, not one per line.
    const int flags = MSG_NOSIGNAL | (stalled_ ? MSG_DONTWAIT : 0);
    const auto sent = ::sendto(socket_.get(), line.data(), line.size(), flags,
                               reinterpret_cast<const sockaddr*>(&address_), sizeof address_);
    if (sent >= 0) {
      stalled_ = false;
    } else if (errno == EAGAIN || errno == EWOULDBLOCK) {
      stalled_ = true;
    }
  }
  void flush_() override {}

 private:
  UniqueFd socket_;
  sockaddr_un address_;
  std::size_t max_line_;
  bool stalled_ = false;  // the last send timed out
};

}  // namespace

std::shared_ptr<spdlog::sinks::sink> make_syslog_sink(const std::filesystem::path& socket,
                                                      std::chrono::milliseconds send_timeout,
                                                      std::size_t max_line, std::string& error) {
  sockaddr_un address{};
  address.sun_family = AF_UNIX;
  const std::string path = socket.string();
  if (path.empty() || path.size() >= sizeof address.sun_path) {
    error = "log_syslog_socket: path too long for a socket: " + path;
    return nullptr;
  }
  std::memcpy(address.sun_path, path.c_str(), path.size() + 1);
  UniqueFd descriptor(::socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0));
  if (!descriptor) {
    error = std::string("cannot create a socket for syslog: ") + std::strerror(errno);
    return nullptr;
  }
  timeval timeout{};
  timeout.tv_sec = static_cast<time_t>(send_timeout.count() / 1000);
  timeout.tv_usec = static_cast<suseconds_t>((send_timeout.count() % 1000) * 1000);
  ::setsockopt(descriptor.get(), SOL_SOCKET, SO_SNDTIMEO, &timeout, sizeof timeout);
  return std::make_shared<SyslogSink>(std::move(descriptor), address, max_line);
}

}  // namespace stokend::wiring
