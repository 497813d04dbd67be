// A session under test: a real Session (mta/server/session.h) on a real
// event_base, its client end a socketpair the test writes commands to and
// reads replies from, in plaintext or through TLS (an OpenSSL client, the
// server with a self-signed certificate). Everything the session reaches
// beyond that is a fake (session_fakes.h).
//
// The loop runs only while the test waits for replies (replies()), so
// several commands sent in one write arrive together, as a pipelining
// client sends them (RFC 2920).
#pragma once

#include <event2/event.h>
#include <fcntl.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <sys/socket.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <chrono>
#include <csignal>
#include <memory>
#include <string>
#include <vector>

#include "common/event_handles.h"
#include "common/unique_fd.h"
#include "mta/config/config.h"
#include "mta/server/self_signed_certificate.h"
#include "mta/server/server_context.h"
#include "mta/server/session.h"
#include "mta/server/tls_context.h"
#include "tests/support/session_fakes.h"
#include "tests/support/temporary_directory.h"

namespace stokend::testing {

class SessionHarness {
 public:
  struct Options {
    Role role = Role::mx;
    TlsMode tls = TlsMode::none;
  };

  explicit SessionHarness(Options options) {
    // As in the daemon: a write to a closed connection is an error, not a signal.
    std::signal(SIGPIPE, SIG_IGN);
    config.hostname = "mx.example.test";
    config.local_domains = {"example.test"};
    // Failed AUTH is answered after a delay: short here, the doubling is the same.
    config.timeouts.auth_failure_base_delay = std::chrono::milliseconds(1);
    config.timeouts.auth_failure_max_delay = std::chrono::milliseconds(4);
    listener.role = options.role;
    listener.tls = options.tls;
    if (options.tls != TlsMode::none) make_tls();
  }

  ~SessionHarness() {
    client_ssl_.reset();
    client_.reset();
    // Let the session see the connection end, so that it closes itself.
    pump_for(std::chrono::milliseconds(20));
  }

  SessionHarness(const SessionHarness&) = delete;
  SessionHarness& operator=(const SessionHarness&) = delete;

  // The session starts; returns its greeting (implicit TLS: after the handshake).
  std::string start() {
    int pair[2];
    REQUIRE(::socketpair(AF_UNIX, SOCK_STREAM, 0, pair) == 0);
    client_.reset(pair[0]);
    REQUIRE(::fcntl(pair[0], F_SETFL, O_NONBLOCK) == 0);
    REQUIRE(::fcntl(pair[1], F_SETFL, O_NONBLOCK) == 0);
    context_ = std::make_unique<server::ServerContext>(server::ServerContext{
        generation(), base.get(), users, intake, workers, sessions, dummy_hash()});
    context_->tokens = tokens;
    context_->token_delivery = &delivery;
    context_->recipient_verifier = recipient_verifier;
    context_->sasl = sasl;
    context_->filter = filter;
    context_->aliases = aliases;
    auto session =
        std::make_shared<server::Session>(*context_, listener, UniqueFd(pair[1]), "192.0.2.7");
    sessions.add(session);
    session->start();
    if (listener.tls == TlsMode::implicit) handshake();
    return reply();
  }

  // What a configuration reload does to the listeners' context: a new
  // generation with next's settings. A session started before keeps its own.
  void replace_generation(const Config& next) {
    REQUIRE(context_);
    auto generation = std::make_shared<server::ServerGeneration>(*context_->generation);
    generation->config = std::make_shared<const Config>(next);
    context_->generation = std::move(generation);
  }
  // Bytes as the client writes them, in one write.
  void send(const std::string& bytes) {
    std::size_t written = 0;
    auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(5);
    while (written < bytes.size()) {
      REQUIRE(std::chrono::steady_clock::now() < deadline);
      long n = client_ssl_ ? SSL_write(client_ssl_.get(), bytes.data() + written,
                                       static_cast<int>(bytes.size() - written))
                           : ::send(client_.get(), bytes.data() + written, bytes.size() - written,
                                    MSG_NOSIGNAL);
      if (n > 0) {
        written += static_cast<std::size_t>(n);
      } else {
        pump();
      }
    }
  }

  // The next `count` replies (a multi-line reply is one, its lines joined
  // by '\n'), running the loop until they came.
  std::vector<std::string> replies(std::size_t count) {
    std::vector<std::string> result;
    auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(5);
    while (result.size() < count) {
      take_complete_replies(result, count);
      if (result.size() == count) break;
      if (std::chrono::steady_clock::now() > deadline || peer_closed_) {
        FAIL_CHECK("waited for " << count << " replies, got " << result.size()
                                 << "; unread: " << received_);
        break;
      }
      pump();
      read_available();
    }
    return result;
  }
  std::string reply() {
    auto one = replies(1);
    return one.empty() ? std::string{} : one.front();
  }
  std::string command(const std::string& line) {
    send(line + "\r\n");
    return reply();
  }

  // True when the session closed the connection (after its last reply).
  bool closed() {
    auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(5);
    while (!peer_closed_ && std::chrono::steady_clock::now() < deadline) {
      pump();
      read_available();
    }
    return peer_closed_;
  }
  // What arrived and is not yet taken as a reply.
  const std::string& unread() const { return received_; }

  // The client side of STARTTLS, after the server's 220.
  void handshake() {
    client_context_.reset(SSL_CTX_new(TLS_client_method()));
    REQUIRE(client_context_);
    client_ssl_.reset(SSL_new(client_context_.get()));
    REQUIRE(client_ssl_);
    SSL_set_fd(client_ssl_.get(), client_.get());
    auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(5);
    for (;;) {
      const int result = SSL_connect(client_ssl_.get());
      if (result == 1) break;
      const int error = SSL_get_error(client_ssl_.get(), result);
      REQUIRE((error == SSL_ERROR_WANT_READ || error == SSL_ERROR_WANT_WRITE));
      REQUIRE(std::chrono::steady_clock::now() < deadline);
      pump();
    }
  }

  // Runs the loop a little while (for what no reply shows).
  void pump_for(std::chrono::milliseconds duration) {
    auto until = std::chrono::steady_clock::now() + duration;
    while (std::chrono::steady_clock::now() < until) pump();
  }

  static std::string dummy_hash() { return "$argon2id$v=19$m=8,t=1,p=1$AAAAAAAAAAAAAAAA$AAAA"; }

  EventBasePtr base{event_base_new()};
  Config config;
  ListenerConfig listener;
  FakeUserLookup users;
  FakeMessageIntake intake{base.get()};
  FakeWorkRunner workers{base.get()};
  FakeSynchronousDelivery delivery{base.get()};
  // Set before start() where a test needs them.
  tokens::TokenAuthority* tokens = nullptr;
  RecipientVerifier* recipient_verifier = nullptr;
  auth::SaslAuthenticator* sasl = nullptr;  // set: AUTH goes to this service
  MessageFilter* filter = nullptr;          // the milters; null: none
  addresses::AliasFile* aliases = nullptr;  // the aliases map; null: none
  const RouteTable* routes = nullptr;
  server::SessionRegistry sessions;

 private:
  void make_tls() {
    std::string error;
    auto paths = server::ensure_self_signed_certificate(directory_.path(), config.hostname, error);
    INFO(error);
    REQUIRE(paths);
    tls_ = server::make_server_tls_context(paths->certificate, paths->private_key, error);
    INFO(error);
    REQUIRE(tls_);
  }

  // The generation the session starts with: config, tls_ and routes as the
  // test set them, not owned (the harness outlives the session).
  std::shared_ptr<const server::ServerGeneration> generation() {
    auto generation = std::make_shared<server::ServerGeneration>();
    generation->config = std::shared_ptr<const Config>(std::shared_ptr<void>(), &config);
    generation->tls = std::shared_ptr<SSL_CTX>(std::shared_ptr<void>(), tls_.get());
    generation->routes = std::shared_ptr<const RouteTable>(std::shared_ptr<void>(), routes);
    return generation;
  }

  void pump() {
    event_base_loop(base.get(), EVLOOP_NONBLOCK);
    ::usleep(200);
  }

  void read_available() {
    char buffer[4096];
    for (;;) {
      long n = client_ssl_ ? SSL_read(client_ssl_.get(), buffer, sizeof buffer)
                           : ::recv(client_.get(), buffer, sizeof buffer, 0);
      if (n > 0) {
        received_.append(buffer, static_cast<std::size_t>(n));
        continue;
      }
      if (client_ssl_) {
        const int error = SSL_get_error(client_ssl_.get(), static_cast<int>(n));
        if (error == SSL_ERROR_ZERO_RETURN || error == SSL_ERROR_SYSCALL ||
            error == SSL_ERROR_SSL) {
          peer_closed_ = true;
        }
        ERR_clear_error();
      } else if (n == 0) {
        peer_closed_ = true;
      }
      return;
    }
  }

  void take_complete_replies(std::vector<std::string>& result, std::size_t count) {
    std::string current;
    std::size_t start = 0;
    for (;;) {
      if (result.size() == count) break;
      const auto end = received_.find("\r\n", start);
      if (end == std::string::npos) break;
      const std::string line = received_.substr(start, end - start);
      start = end + 2;
      current += (current.empty() ? "" : "\n") + line;
      if (line.size() < 4 || line[3] != '-') {  // the last line of a reply
        result.push_back(current);
        current.clear();
        received_.erase(0, start);
        start = 0;
      }
    }
  }

  TemporaryDirectory directory_;
  SslContextPtr tls_;
  std::unique_ptr<server::ServerContext> context_;
  UniqueFd client_;
  SslContextPtr client_context_;
  SslPtr client_ssl_;
  std::string received_;
  bool peer_closed_ = false;
};

}  // namespace stokend::testing
