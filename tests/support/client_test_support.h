// Shared pieces of the outbound client tests: real peers (Postfix's
// smtp-sink, Dovecot LMTP) started in a temporary folder on free loopback
// ports and stopped by their PID, and a listener that never answers. The
// tests run their event loop with TestLoop (test_loop.h).
//
// Every peer is bounded in time: it is killed by its owner's destructor, and
// by the kernel when the test binary dies (PR_SET_PDEATHSIG).
#pragma once

#include <arpa/inet.h>
#include <event2/event.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <catch2/catch.hpp>
#include <cerrno>
#include <chrono>
#include <cstdint>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <memory>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "common/event_handles.h"
#include "common/unique_fd.h"
#include "tests/support/files.h"
#include "tests/support/temporary_directory.h"
#include "tests/support/test_loop.h"

namespace client_test {

namespace fs = std::filesystem;
using namespace std::chrono_literals;

using stokend::testing::files_in;
using stokend::testing::read_whole_file;
using stokend::testing::TestLoop;
using stokend::testing::write_whole_file;

// A scratch folder (tests/support/temporary_directory.h) readable by all:
// peers drop privileges and must reach it.
class TemporaryDirectory : public stokend::testing::TemporaryDirectory {
 public:
  TemporaryDirectory() { ::chmod(path().c_str(), 0755); }
};

// CRLF -> LF: Maildir files and smtp-sink dumps store LF line endings.
inline std::string with_lf(std::string text) {
  std::string out;
  for (std::size_t i = 0; i < text.size(); ++i) {
    if (text[i] == '\r' && i + 1 < text.size() && text[i + 1] == '\n') continue;
    out += text[i];
  }
  return out;
}

// A loopback port nobody listens on right now.
inline std::uint16_t free_loopback_port() {
  stokend::UniqueFd probe(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
  REQUIRE(probe);
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  REQUIRE(::bind(probe.get(), reinterpret_cast<sockaddr*>(&address), sizeof address) == 0);
  socklen_t length = sizeof address;
  REQUIRE(::getsockname(probe.get(), reinterpret_cast<sockaddr*>(&address), &length) == 0);
  return ntohs(address.sin_port);
}

inline bool accepts_connections(std::uint16_t port) {
  stokend::UniqueFd probe(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  address.sin_port = htons(port);
  return ::connect(probe.get(), reinterpret_cast<sockaddr*>(&address), sizeof address) == 0;
}

inline bool accepts_connections(const fs::path& unix_path) {
  stokend::UniqueFd probe(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
  sockaddr_un address{};
  address.sun_family = AF_UNIX;
  std::string path = unix_path.string();
  if (path.size() >= sizeof address.sun_path) return false;
  std::copy(path.begin(), path.end(), address.sun_path);
  return ::connect(probe.get(), reinterpret_cast<sockaddr*>(&address), sizeof address) == 0;
}

template <typename Ready>
bool wait_until(Ready ready, std::chrono::milliseconds limit = 10s) {
  auto deadline = std::chrono::steady_clock::now() + limit;
  while (std::chrono::steady_clock::now() < deadline) {
    if (ready()) return true;
    std::this_thread::sleep_for(20ms);
  }
  return ready();
}

// A peer process, stopped (SIGTERM, then SIGKILL) and reaped on destruction.
//
// The peer runs under a small watcher process. The watcher dies with the
// test binary (PR_SET_PDEATHSIG) and then stops the peer. The peer cannot
// carry the death signal itself: Linux clears it whenever a process changes
// its effective user or group, which Postfix and Dovecot do.
class ChildProcess {
 public:
  ChildProcess(const std::vector<std::string>& arguments, const fs::path& log_file) {
    std::vector<char*> argv;
    for (const auto& argument : arguments) argv.push_back(const_cast<char*>(argument.c_str()));
    argv.push_back(nullptr);
    int log = ::open(log_file.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
    int null = ::open("/dev/null", O_RDONLY | O_CLOEXEC);
    pid_t test_binary = ::getpid();
    // Only async-signal-safe calls between fork and exec.
    sigset_t watched;
    sigemptyset(&watched);
    sigaddset(&watched, SIGTERM);
    sigaddset(&watched, SIGCHLD);
    sigset_t previous;
    ::pthread_sigmask(SIG_BLOCK, &watched, &previous);
    watcher_ = ::fork();
    if (watcher_ == 0) {
      ::prctl(PR_SET_PDEATHSIG, SIGTERM);
      if (::getppid() != test_binary) ::_exit(0);
      pid_t peer = ::fork();
      if (peer == 0) {
        ::pthread_sigmask(SIG_SETMASK, &previous, nullptr);
        if (log >= 0) {
          ::dup2(log, STDOUT_FILENO);
          ::dup2(log, STDERR_FILENO);
        }
        if (null >= 0) ::dup2(null, STDIN_FILENO);
        ::execv(argv[0], argv.data());
        ::_exit(127);
      }
      watch(peer, watched);
    }
    ::pthread_sigmask(SIG_SETMASK, &previous, nullptr);
    if (log >= 0) ::close(log);
    if (null >= 0) ::close(null);
    REQUIRE(watcher_ > 0);
  }
  ~ChildProcess() { stop(); }
  ChildProcess(const ChildProcess&) = delete;
  ChildProcess& operator=(const ChildProcess&) = delete;

  void stop() {
    if (watcher_ <= 0) return;
    ::kill(watcher_, SIGTERM);
    auto deadline = std::chrono::steady_clock::now() + 10s;
    int status = 0;
    while (::waitpid(watcher_, &status, WNOHANG) == 0) {
      if (std::chrono::steady_clock::now() > deadline) {
        ::kill(watcher_, SIGKILL);
        ::waitpid(watcher_, &status, 0);
        break;
      }
      std::this_thread::sleep_for(10ms);
    }
    watcher_ = -1;
  }

 private:
  // The watcher: waits for the peer to exit, or for SIGTERM (from stop()
  // or from the death of the test binary), then stops the peer and exits.
  [[noreturn]] static void watch(pid_t peer, const sigset_t& watched) {
    int status = 0;
    for (;;) {
      int signal = 0;
      ::sigwait(&watched, &signal);
      if (signal == SIGCHLD && ::waitpid(peer, &status, WNOHANG) == peer) ::_exit(0);
      if (signal == SIGTERM) break;
    }
    ::kill(peer, SIGTERM);
    timespec limit{5, 0};
    siginfo_t information;
    while (::waitpid(peer, &status, WNOHANG) == 0) {
      if (::sigtimedwait(&watched, &information, &limit) < 0 && errno == EAGAIN) {
        ::kill(peer, SIGKILL);
        ::waitpid(peer, &status, 0);
        break;
      }
    }
    ::_exit(0);
  }

  pid_t watcher_ = -1;
};

// Postfix's smtp-sink on a free loopback port (or a unix socket), dumping
// every message it accepts into its own folder.
class SmtpSink {
 public:
  // options: extra smtp-sink options, e.g. {"-p"} or {"-f", "RCPT"}.
  explicit SmtpSink(std::vector<std::string> options = {}, bool unix_socket = false) {
    dumps_ = directory_.path() / "dumps";
    fs::create_directory(dumps_);
    ::chmod(dumps_.c_str(), 0777);  // smtp-sink writes as nobody
    std::vector<std::string> arguments = {"/usr/sbin/smtp-sink", "-u", "nobody", "-d",
                                          (dumps_ / "%Y%m%d%H%M%S.").string()};
    arguments.insert(arguments.end(), options.begin(), options.end());
    if (unix_socket) {
      socket_path_ = directory_.path() / "sink.socket";
      arguments.push_back("unix:" + socket_path_.string());
    } else {
      port_ = free_loopback_port();
      arguments.push_back("127.0.0.1:" + std::to_string(port_));
    }
    arguments.push_back("100");
    process_ = std::make_unique<ChildProcess>(arguments, directory_.path() / "sink.log");
    bool ready = wait_until([&] {
      if (unix_socket) return fs::exists(socket_path_) && accepts_connections(socket_path_);
      return accepts_connections(port_);
    });
    if (!ready)
      FAIL("smtp-sink did not start: " << read_whole_file(directory_.path() / "sink.log"));
  }

  std::uint16_t port() const { return port_; }
  const fs::path& socket_path() const { return socket_path_; }
  // The dumped messages, oldest first (smtp-sink's format: its own
  // X-* headers and Received, then the message with LF line endings).
  std::vector<std::string> dumps() const {
    std::vector<std::string> contents;
    for (const auto& file : files_in(dumps_)) contents.push_back(read_whole_file(file));
    return contents;
  }

 private:
  TemporaryDirectory directory_;
  fs::path dumps_;
  fs::path socket_path_;
  std::uint16_t port_ = 0;
  std::unique_ptr<ChildProcess> process_;
};

// A private Dovecot with LMTP on a loopback port and a unix socket, users
// alice and bob (UID/GID 65534) whose Maildirs live in its folder.
class Dovecot {
 public:
  Dovecot() {
    const fs::path& root = directory_.path();
    port_ = free_loopback_port();
    for (const char* folder : {"base", "state", "home", "home/alice", "home/bob"}) {
      fs::create_directory(root / folder);
    }
    for (const char* user : {"alice", "bob"}) {
      REQUIRE(::chown((root / "home" / user).c_str(), 65534, 65534) == 0);
    }
    write_whole_file(root / "passwd",
                     "alice:{PLAIN}pw:65534:65534::" + (root / "home/alice").string() + "::\n" +
                         "bob:{PLAIN}pw:65534:65534::" + (root / "home/bob").string() + "::\n");
    std::string passwd = (root / "passwd").string();
    write_whole_file(root / "dovecot.conf",
                     "base_dir = " + (root / "base").string() + "\n" +
                         "state_dir = " + (root / "state").string() + "\n" +
                         "instance_name = stokend-client-test\n" +
                         "log_path = " + (root / "dovecot.log").string() + "\n" +
                         "protocols = lmtp\n"
                         "listen = 127.0.0.1\n"
                         "ssl = no\n"
                         "mail_location = maildir:~/Maildir\n"
                         "first_valid_uid = 1\n"
                         "auth_username_format = %Ln\n"
                         "passdb {\n  driver = passwd-file\n  args = " +
                         passwd +
                         "\n}\n"
                         "userdb {\n  driver = passwd-file\n  args = " +
                         passwd +
                         "\n}\n"
                         "service lmtp {\n"
                         "  unix_listener lmtp {\n    mode = 0666\n  }\n"
                         "  inet_listener lmtp {\n    address = 127.0.0.1\n    port = " +
                         std::to_string(port_) + "\n  }\n}\n");
    // -F: the master stays in the foreground, under our watcher, so that it
    // goes away with the test binary.
    process_ = std::make_unique<ChildProcess>(
        std::vector<std::string>{"/usr/sbin/dovecot", "-F", "-c", (root / "dovecot.conf").string()},
        root / "dovecot.stderr");
    bool ready = wait_until(
        [&] { return accepts_connections(port_) && accepts_connections(socket_path()); });
    if (!ready) {
      FAIL("dovecot did not start: " << read_whole_file(root / "dovecot.stderr")
                                     << read_whole_file(root / "dovecot.log"));
    }
  }
  ~Dovecot() {
    // Stop by the PID the master wrote; the watcher then reaps it.
    std::string pid = read_whole_file(directory_.path() / "base" / "master.pid");
    if (!pid.empty()) ::kill(std::stoi(pid), SIGTERM);
    process_->stop();
  }

  std::uint16_t port() const { return port_; }
  fs::path socket_path() const { return directory_.path() / "base" / "lmtp"; }
  fs::path new_mail(const std::string& user) const {
    return directory_.path() / "home" / user / "Maildir" / "new";
  }
  std::string log() const { return read_whole_file(directory_.path() / "dovecot.log"); }

 private:
  TemporaryDirectory directory_;
  std::uint16_t port_ = 0;
  std::unique_ptr<ChildProcess> process_;
};

inline void run_command(const std::string& command) {
  INFO(command);
  REQUIRE(std::system((command + " >/dev/null 2>&1").c_str()) == 0);
}

// A private CA and a server certificate for mx.b.test, made with openssl.
struct TestCertificates {
  explicit TestCertificates(const fs::path& folder)
      : ca_certificate(folder / "ca.crt"),
        server_certificate(folder / "server.crt"),
        server_key(folder / "server.key") {
    std::string dir = folder.string();
    run_command(
        "openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes "
        "-days 2 -subj /CN=stokend-test-ca -keyout " +
        dir + "/ca.key -out " + dir + "/ca.crt");
    run_command(
        "openssl req -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes "
        "-subj /CN=mx.b.test -keyout " +
        dir + "/server.key -out " + dir + "/server.csr");
    write_whole_file(folder / "san.ext", "subjectAltName=DNS:mx.b.test\n");
    run_command("openssl x509 -req -in " + dir + "/server.csr -CA " + dir + "/ca.crt -CAkey " +
                dir + "/ca.key -CAcreateserial -days 2 -extfile " + dir + "/san.ext -out " + dir +
                "/server.crt");
  }
  fs::path ca_certificate;
  fs::path server_certificate;
  fs::path server_key;
};

// A private Postfix whose smtpd listens on a free loopback port, offers
// STARTTLS with a certificate for mx.b.test, accepts mail for b.test,
// refuses rejected@b.test with 550 5.1.1, and discards what it accepts.
class Postfix {
 public:
  explicit Postfix(std::size_t message_size_limit = 10240000) : certificates_(directory_.path()) {
    const fs::path& root = directory_.path();
    port_ = free_loopback_port();
    for (const char* folder : {"conf", "queue", "data"}) fs::create_directory(root / folder);
    run_command("chown postfix " + (root / "data").string());
    std::string r = root.string();
    write_whole_file(root / "conf/main.cf",
                     "compatibility_level = 3.6\n"
                     "queue_directory = " +
                         r +
                         "/queue\n"
                         "data_directory = " +
                         r +
                         "/data\n"
                         "maillog_file = " +
                         r +
                         "/maillog\n"
                         "maillog_file_prefixes = " +
                         r +
                         "\n"
                         "inet_interfaces = 127.0.0.1\n"
                         "inet_protocols = ipv4\n"
                         "myhostname = mx.b.test\n"
                         "mydomain = b.test\n"
                         "myorigin = b.test\n"
                         "mydestination =\n"
                         "relay_domains = b.test\n"
                         "mynetworks = 127.0.0.0/8\n"
                         "smtpd_recipient_restrictions = check_recipient_access "
                         "inline:{ { rejected@b.test = 550 5.1.1 no such user } }, "
                         "permit_mynetworks, reject\n"
                         "relay_transport = discard\n"
                         "default_transport = discard\n"
                         "smtp_dns_support_level = disabled\n"
                         "alias_maps =\n"
                         "alias_database =\n"
                         "smtputf8_enable = yes\n"
                         "message_size_limit = " +
                         std::to_string(message_size_limit) +
                         "\n"
                         "smtpd_tls_security_level = may\n"
                         "smtpd_tls_cert_file = " +
                         certificates_.server_certificate.string() +
                         "\n"
                         "smtpd_tls_key_file = " +
                         certificates_.server_key.string() + "\n");
    // master.cf as shipped, with smtpd moved to our port and out of chroot.
    std::string master = read_whole_file("/usr/share/postfix/master.cf.dist");
    std::string shipped = "smtp      inet  n       -       y       -       -       smtpd";
    auto position = master.find(shipped);
    REQUIRE(position != std::string::npos);
    master.replace(position, shipped.size(),
                   "127.0.0.1:" + std::to_string(port_) + " inet n - n - - smtpd");
    write_whole_file(root / "conf/master.cf", master);
    // "postfix check" creates the queue folders; master -d stays in the
    // foreground as our child, and its services exit when it does.
    run_command("/usr/sbin/postfix -c " + (root / "conf").string() + " check");
    process_ = std::make_unique<ChildProcess>(
        std::vector<std::string>{"/usr/lib/postfix/sbin/master", "-c", (root / "conf").string(),
                                 "-d"},
        root / "master.log");
    if (!wait_until([&] { return accepts_connections(port_); })) {
      FAIL("postfix did not start: " << read_whole_file(root / "master.log") << log());
    }
  }

  std::uint16_t port() const { return port_; }
  const TestCertificates& certificates() const { return certificates_; }
  std::string log() const { return read_whole_file(directory_.path() / "maillog"); }

 private:
  TemporaryDirectory directory_;
  TestCertificates certificates_;
  std::uint16_t port_ = 0;
  std::unique_ptr<ChildProcess> process_;
};

// A loopback listener that never accepts and never answers: connections
// complete in the kernel's backlog, and the greeting never comes.
class SilentListener {
 public:
  SilentListener() : socket_(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0)) {
    REQUIRE(socket_);
    sockaddr_in address{};
    address.sin_family = AF_INET;
    address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    REQUIRE(::bind(socket_.get(), reinterpret_cast<sockaddr*>(&address), sizeof address) == 0);
    REQUIRE(::listen(socket_.get(), 8) == 0);
    socklen_t length = sizeof address;
    REQUIRE(::getsockname(socket_.get(), reinterpret_cast<sockaddr*>(&address), &length) == 0);
    port_ = ntohs(address.sin_port);
  }
  std::uint16_t port() const { return port_; }

 private:
  stokend::UniqueFd socket_;
  std::uint16_t port_ = 0;
};

}  // namespace client_test
