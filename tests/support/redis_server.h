// A private redis-server for the tests of the Redis token store: started in
// a temporary folder, listening only on a unix socket there (no TCP port),
// with the durable settings stokend documents (appendonly yes, appendfsync
// always), stopped and reaped by the destructor or by the kernel when the
// test binary dies (client_test::ChildProcess).
//
// Contract: available() is false when redis-server is not installed; a test
// then skips with a warning naming the missing binary. stop() and start()
// let a test take Redis away and bring it back on the same socket and data
// (its append-only file).
#pragma once

#include <unistd.h>

#include <catch2/catch.hpp>
#include <filesystem>
#include <memory>
#include <string>
#include <vector>

#include "tests/support/client_test_support.h"

namespace stokend::testing {

class RedisServer {
 public:
  static std::string binary() {
    for (const char* candidate : {"/usr/bin/redis-server", "/usr/local/bin/redis-server"}) {
      if (::access(candidate, X_OK) == 0) return candidate;
    }
    return {};
  }

  RedisServer() : directory_(std::filesystem::temp_directory_path()) {
    if (binary().empty()) return;
    start();
  }
  ~RedisServer() { stop(); }
  RedisServer(const RedisServer&) = delete;
  RedisServer& operator=(const RedisServer&) = delete;

  bool available() const { return !binary().empty(); }
  std::filesystem::path socket() const { return directory_.path() / "redis.sock"; }
  std::string url() const { return "unix:" + socket().string(); }

  void start() {
    std::filesystem::remove(socket());
    process_ = std::make_unique<client_test::ChildProcess>(
        std::vector<std::string>{binary(), "--port", "0", "--unixsocket", socket().string(),
                                 "--unixsocketperm", "700", "--dir", directory_.path().string(),
                                 "--appendonly", "yes", "--appendfsync", "always", "--save", "",
                                 "--daemonize", "no"},
        directory_.path() / "redis.log");
    REQUIRE(client_test::wait_until([&] { return answers(); }));
  }
  void stop() { process_.reset(); }

 private:
  // PONG, not just a connection: while Redis loads its append-only file
  // it accepts connections and answers -LOADING.
  bool answers() const {
    const int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) return false;
    sockaddr_un address{};
    address.sun_family = AF_UNIX;
    const std::string path = socket().string();
    path.copy(address.sun_path, sizeof address.sun_path - 1);
    bool ok = ::connect(fd, reinterpret_cast<sockaddr*>(&address), sizeof address) == 0;
    if (ok) {
      const timeval limit{1, 0};
      ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &limit, sizeof limit);
      char reply[16] = {};
      ok = ::send(fd, "PING\r\n", 6, MSG_NOSIGNAL) == 6 && ::recv(fd, reply, 5, 0) == 5 &&
           std::string(reply, 5) == "+PONG";
    }
    ::close(fd);
    return ok;
  }

  TemporaryDirectory directory_;
  std::unique_ptr<client_test::ChildProcess> process_;
};

}  // namespace stokend::testing
