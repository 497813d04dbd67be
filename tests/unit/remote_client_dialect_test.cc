// Unit tests for the Remote Client's two dialects (mta/client/remote_client.h,
// rfcdraft/ §10 and Appendix D) against a scripted Token Server that answers
// as Dovecot's COI submission plugin does in its source: LHLO is an unknown
// command (500 5.5.1), the EHLO reply lists a bare STOKEN keyword (added by
// client_add_extra_capability), MAIL takes a valueless SYNC, RCPT takes
// STOKEN= and MYSTOKEN= only in a SYNC transaction, and the end of data gets
// one reply per recipient (SMTP_SERVER_TRANSACTION_FLAG_REPLY_PER_RCPT).
//
// The server is real TLS on loopback (implicit TLS, as _submissions._tcp
// announces it) with a self-signed certificate the client trusts; DNS is a
// FakeResolver. The server runs on its own thread with blocking sockets and
// a receive deadline, so a client that stops talking cannot hang the test.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <sys/socket.h>
#include <sys/time.h>

#include <algorithm>
#include <atomic>
#include <catch2/catch.hpp>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "common/event_handles.h"
#include "common/unique_fd.h"
#include "mta/client/client_tls.h"
#include "mta/client/connection_pool.h"
#include "mta/client/remote_client.h"
#include "mta/server/self_signed_certificate.h"
#include "tests/support/fake_resolver.h"
#include "tests/support/temporary_directory.h"
#include "tests/support/test_loop.h"

namespace {

using namespace stokend;
using namespace std::chrono_literals;
using client::FastLaneRecipient;
using client::FastLaneResult;

const std::string server_name = "tokens.b.test";

struct ServerMode {
  bool refuse_lhlo = true;      // Dovecot's submission service has no LHLO
  bool announce_stoken = true;  // STOKEN in the EHLO reply
  bool auth_stoken = false;     // "AUTH PLAIN STOKEN" instead of "AUTH PLAIN"
};

// One implicit-TLS listener on 127.0.0.1 that serves connections one after
// the other, each as the scripted dialogue, and records every line it got.
class ScriptedTokenServer {
 public:
  ScriptedTokenServer(const std::filesystem::path& directory, ServerMode mode) : mode_(mode) {
    std::string error;
    auto paths = server::ensure_self_signed_certificate(directory, server_name, error);
    REQUIRE(paths);
    certificate_ = paths->certificate;
    context_.reset(SSL_CTX_new(TLS_server_method()));
    REQUIRE(context_);
    REQUIRE(SSL_CTX_use_certificate_chain_file(context_.get(), paths->certificate.c_str()) == 1);
    REQUIRE(SSL_CTX_use_PrivateKey_file(context_.get(), paths->private_key.c_str(),
                                        SSL_FILETYPE_PEM) == 1);
    listener_ = UniqueFd(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
    REQUIRE(listener_);
    sockaddr_in address{};
    address.sin_family = AF_INET;
    address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    REQUIRE(::bind(listener_.get(), reinterpret_cast<sockaddr*>(&address), sizeof address) == 0);
    socklen_t length = sizeof address;
    REQUIRE(::getsockname(listener_.get(), reinterpret_cast<sockaddr*>(&address), &length) == 0);
    port_ = ntohs(address.sin_port);
    REQUIRE(::listen(listener_.get(), 8) == 0);
    thread_ = std::thread([this] { serve(); });
  }
  ~ScriptedTokenServer() {
    stopping_ = true;
    ::shutdown(listener_.get(), SHUT_RDWR);
    thread_.join();
    for (auto& conversation : conversations_) conversation.join();
  }

  std::uint16_t port() const { return port_; }
  const std::filesystem::path& certificate() const { return certificate_; }
  std::vector<std::string> lines() const {
    std::lock_guard lock(mutex_);
    return lines_;
  }
  std::size_t count_starting(const std::string& prefix) const {
    std::size_t count = 0;
    for (const auto& line : lines()) count += line.rfind(prefix, 0) == 0;
    return count;
  }

 private:
  // One thread per connection: the client keeps sessions open in its pool
  // while it opens the next one.
  void serve() {
    while (!stopping_) {
      auto connection =
          std::make_shared<UniqueFd>(::accept4(listener_.get(), nullptr, nullptr, SOCK_CLOEXEC));
      if (!*connection) return;
      conversations_.emplace_back([this, connection] {
        timeval deadline{5, 0};
        ::setsockopt(connection->get(), SOL_SOCKET, SO_RCVTIMEO, &deadline, sizeof deadline);
        SslPtr tls(SSL_new(context_.get()));
        SSL_set_fd(tls.get(), connection->get());
        if (SSL_accept(tls.get()) != 1) return;
        converse(tls.get());
        SSL_shutdown(tls.get());
      });
    }
  }

  static std::optional<std::string> read_line(SSL* tls, std::string& buffer) {
    while (true) {
      auto end = buffer.find("\r\n");
      if (end != std::string::npos) {
        std::string line = buffer.substr(0, end);
        buffer.erase(0, end + 2);
        return line;
      }
      char chunk[4096];
      int got = SSL_read(tls, chunk, sizeof chunk);
      if (got <= 0) return std::nullopt;
      buffer.append(chunk, static_cast<std::size_t>(got));
    }
  }

  static void send(SSL* tls, const std::string& text) {
    SSL_write(tls, text.data(), static_cast<int>(text.size()));
  }

  void converse(SSL* tls) {
    std::string buffer;
    send(tls, "220 " + server_name + " Dovecot ready.\r\n");
    bool sync = false;
    std::vector<std::string> recipients;
    while (auto line = read_line(tls, buffer)) {
      {
        std::lock_guard lock(mutex_);
        lines_.push_back(*line);
      }
      const std::string verb = line->substr(0, 4);
      if (verb == "LHLO" && mode_.refuse_lhlo) {
        send(tls, "500 5.5.1 Unknown command\r\n");
      } else if (verb == "EHLO" || verb == "LHLO") {
        send(tls, "250-" + server_name + "\r\n250-8BITMIME\r\n" +
                      (mode_.auth_stoken ? "250-AUTH PLAIN STOKEN\r\n" : "250-AUTH PLAIN\r\n") +
                      "250-BURL imap\r\n250-CHUNKING\r\n250-ENHANCEDSTATUSCODES\r\n"
                      "250-SIZE\r\n250-PIPELINING\r\n" +
                      (mode_.announce_stoken ? "250-STOKEN\r\n" : "") + "250 DSN\r\n");
      } else if (verb == "AUTH") {
        send(tls, "235 2.7.0 Logged in.\r\n");
      } else if (verb == "MAIL") {
        sync = line->find(" SYNC") != std::string::npos;
        recipients.clear();
        send(tls, "250 2.1.0 OK\r\n");
      } else if (verb == "RCPT") {
        // submission-coi-plugin.c: "The STOKEN= parameter cannot be used
        // without SYNC".
        if (line->find("STOKEN=") != std::string::npos && !sync) {
          send(tls, "501 5.5.4 The STOKEN= parameter cannot be used without SYNC\r\n");
          continue;
        }
        recipients.push_back(line->substr(8, line->find('>') - 7));
        send(tls, "250 2.1.5 OK\r\n");
      } else if (verb == "DATA") {
        send(tls, "354 OK\r\n");
        while (auto data = read_line(tls, buffer)) {
          if (*data == ".") break;
        }
        // One reply per recipient; the second one is temporarily refused,
        // so the test sees that replies are matched to their recipients.
        std::string replies;
        for (std::size_t i = 0; i < recipients.size(); ++i) {
          replies += i == 1 ? "451 4.2.0 " + recipients[i] + " Mailbox is locked\r\n"
                            : "250 2.0.0 " + recipients[i] + " Saved\r\n";
          if (!sync) break;  // without SYNC: one reply for the whole transaction
        }
        send(tls, replies);
      } else if (verb == "RSET") {
        send(tls, "250 2.0.0 OK\r\n");
      } else if (verb == "QUIT") {
        send(tls, "221 2.0.0 Bye\r\n");
        return;
      } else {
        send(tls, "500 5.5.1 Unknown command\r\n");
      }
    }
  }

  ServerMode mode_;
  std::filesystem::path certificate_;
  SslContextPtr context_;
  UniqueFd listener_;
  std::uint16_t port_ = 0;
  std::thread thread_;
  std::atomic<bool> stopping_{false};
  std::vector<std::thread> conversations_;  // the accepting thread's, joined at the end
  mutable std::mutex mutex_;
  std::vector<std::string> lines_;
};

struct Fixture {
  stokend::testing::TemporaryDirectory directory;
  ScriptedTokenServer server;
  stokend::testing::TestLoop loop;
  dns::FakeResolver resolver{loop.base()};
  SslContextPtr tls;
  std::optional<client::ConnectionPool> pool;
  std::optional<client::RemoteClient> remote;

  explicit Fixture(ServerMode mode, TokenDialect dialect = TokenDialect::automatic)
      : server(directory.path() / "certificate", mode) {
    resolver.set_srv("_submissions._tcp.b.test",
                     dns::ok_answer<dns::SrvRecord>({{0, 1, server.port(), server_name}}));
    resolver.set_addresses(server_name, dns::ok_answer<std::string>({"127.0.0.1"}));
    std::string error;
    tls = client::make_client_tls_context(
        {.ca_file = server.certificate().string(), .use_system_store = false}, error);
    REQUIRE(tls);
    client::ClientSettings settings;
    settings.helo_name = "mail.a.test";
    settings.tls_context = tls.get();
    settings.timeouts.command = 5s;
    settings.timeouts.greeting = 5s;
    settings.timeouts.data_done = 5s;
    pool.emplace(loop.base(), settings);
    client::FastLaneSettings fast_lane;
    if (dialect != TokenDialect::automatic) fast_lane.dialects["b.test"] = dialect;
    remote.emplace(*pool, resolver, fast_lane);
  }
  ~Fixture() {
    remote.reset();
    pool.reset();
  }

  std::vector<FastLaneResult> deliver(const std::string& sender,
                                      std::vector<FastLaneRecipient> recipients) {
    std::optional<std::vector<FastLaneResult>> results;
    remote->deliver("b.test", sender, std::move(recipients),
                    std::make_shared<const std::string>("Subject: hi\r\n\r\nhello\r\n"),
                    [&](std::vector<FastLaneResult> done) { results = std::move(done); });
    REQUIRE(loop.run_until([&] { return results.has_value(); }, 20s));
    return *results;
  }

  std::string server_key() const { return server_name + ":" + std::to_string(server.port()); }
};

const FastLaneRecipient bob{"bob@b.test", "1-token-for-bob", "1-my-token"};
const FastLaneRecipient carol{"carol@b.test", "1-token-for-carol", ""};

}  // namespace

TEST_CASE(
    "automatic: a server that refuses LHLO and announces STOKEN after EHLO gets the SYNC form",
    "[client][dialect]") {
  Fixture fixture(ServerMode{});
  auto results = fixture.deliver("alice@a.test", {bob, carol});
  REQUIRE(results.size() == 2);
  CHECK(results[0].outcome == FastLaneResult::Outcome::delivered);
  CHECK(results[0].reply == "250 2.0.0 <bob@b.test> Saved");
  CHECK(results[1].outcome == FastLaneResult::Outcome::fall_back);
  CHECK(results[1].reply == "451 4.2.0 <carol@b.test> Mailbox is locked");
  CHECK_FALSE(results[1].token_refused);

  const auto lines = fixture.server.lines();
  CHECK(fixture.server.count_starting("LHLO ") == 1);
  CHECK(fixture.server.count_starting("EHLO ") == 1);
  CHECK(fixture.server.count_starting("AUTH") == 0);  // not offered: the plugin has no STOKEN SASL
  // SIZE without a number (Dovecot's form) still gets SIZE= (RFC 1870 §6).
  CHECK(std::find(lines.begin(), lines.end(),
                  "MAIL FROM:<alice@a.test> SIZE=22 BODY=8BITMIME SYNC") != lines.end());
  CHECK(std::find(lines.begin(), lines.end(),
                  "RCPT TO:<bob@b.test> STOKEN=1-token-for-bob MYSTOKEN=1-my-token") !=
        lines.end());
  CHECK(fixture.remote->learnt_dialect(fixture.server_key()) == TokenDialect::ehlo_sync);

  // Another sender needs a new session; it starts with EHLO, learnt.
  results = fixture.deliver("dave@a.test", {bob});
  CHECK(results[0].outcome == FastLaneResult::Outcome::delivered);
  CHECK(fixture.server.count_starting("LHLO ") == 1);
  CHECK(fixture.server.count_starting("EHLO ") == 2);
}

TEST_CASE("automatic: EHLO without STOKEN after a refused LHLO is no Token Server",
          "[client][dialect]") {
  Fixture fixture(ServerMode{.announce_stoken = false});
  auto results = fixture.deliver("alice@a.test", {bob});
  CHECK(results[0].outcome == FastLaneResult::Outcome::fall_back);
  CHECK(results[0].reply.find("does not announce STOKEN after EHLO") != std::string::npos);
  CHECK(fixture.server.count_starting("MAIL") == 0);
  CHECK_FALSE(fixture.remote->learnt_dialect(fixture.server_key()));
}

TEST_CASE("lhlo: a server that refuses LHLO is not asked with EHLO", "[client][dialect]") {
  Fixture fixture(ServerMode{}, TokenDialect::lhlo);
  auto results = fixture.deliver("alice@a.test", {bob});
  CHECK(results[0].outcome == FastLaneResult::Outcome::fall_back);
  CHECK(results[0].reply.find("refused our LHLO: 500 5.5.1 Unknown command") != std::string::npos);
  CHECK(fixture.server.count_starting("EHLO") == 0);
}

TEST_CASE(
    "ehlo-sync: EHLO first, SYNC even where EHLO does not list STOKEN, AUTH STOKEN when listed",
    "[client][dialect]") {
  SECTION("no STOKEN in the EHLO reply, no AUTH STOKEN") {
    Fixture fixture(ServerMode{.refuse_lhlo = false, .announce_stoken = false},
                    TokenDialect::ehlo_sync);
    auto results = fixture.deliver("alice@a.test", {bob});
    CHECK(results[0].outcome == FastLaneResult::Outcome::delivered);
    CHECK(fixture.server.count_starting("LHLO") == 0);
    CHECK(fixture.server.count_starting("AUTH") == 0);
    CHECK(fixture.server.count_starting("MAIL FROM:<alice@a.test> SIZE=22 BODY=8BITMIME SYNC") ==
          1);
  }
  SECTION("AUTH STOKEN listed: the first recipient's token authenticates the session") {
    Fixture fixture(ServerMode{.auth_stoken = true}, TokenDialect::ehlo_sync);
    auto results = fixture.deliver("alice@a.test", {bob, carol});
    CHECK(results[0].outcome == FastLaneResult::Outcome::delivered);
    CHECK(results[1].outcome == FastLaneResult::Outcome::fall_back);
    // base64("bob@b.test\0" "1-token-for-bob")
    CHECK(fixture.server.count_starting("AUTH STOKEN Ym9iQGIudGVzdAAxLXRva2VuLWZvci1ib2I=") == 1);
  }
}

TEST_CASE("offers_sasl reads the mechanisms of the AUTH keyword, case-insensitively",
          "[client][dialect]") {
  client::Reply reply;
  reply.code = 250;
  reply.lines = {"tokens.b.test", "AUTH PLAIN stoken", "STOKEN"};
  const auto capabilities = client::Capabilities::from_hello_reply(reply);
  CHECK(capabilities.offers_sasl("STOKEN"));
  CHECK(capabilities.offers_sasl("plain"));
  CHECK_FALSE(capabilities.offers_sasl("LOGIN"));
  reply.lines = {"tokens.b.test", "AUTH PLAINSTOKEN", "STOKEN"};
  CHECK_FALSE(client::Capabilities::from_hello_reply(reply).offers_sasl("STOKEN"));
  reply.lines = {"tokens.b.test", "STOKEN"};
  CHECK_FALSE(client::Capabilities::from_hello_reply(reply).offers_sasl("STOKEN"));
}
