// Tests of AresResolver against a real DNS server: a private dnsmasq on a free
// loopback port, serving made-up names under .test. Nothing leaves loopback.
#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <catch2/catch.hpp>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <functional>
#include <optional>
#include <random>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "common/event_handles.h"
#include "dns/ares_handles.h"
#include "dns/ares_resolver.h"
#include "dns/mail_exchangers.h"
#include "dns/submission_servers.h"
#include "tests/support/test_loop.h"

namespace fs = std::filesystem;
using namespace stokend;
using namespace stokend::dns;
using namespace std::chrono_literals;
using stokend::testing::TestLoop;

namespace {

const char* const dnsmasq_binary = "/usr/sbin/dnsmasq";

// A file descriptor closed on scope exit.
class Socket {
 public:
  explicit Socket(int type) : descriptor_(::socket(AF_INET, type, 0)) {}
  ~Socket() {
    if (descriptor_ >= 0) ::close(descriptor_);
  }
  Socket(const Socket&) = delete;
  Socket& operator=(const Socket&) = delete;
  int get() const { return descriptor_; }

 private:
  int descriptor_;
};

sockaddr_in loopback(std::uint16_t port) {
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_port = htons(port);
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  return address;
}

bool bind_to(const Socket& socket, std::uint16_t port) {
  sockaddr_in address = loopback(port);
  return ::bind(socket.get(), reinterpret_cast<const sockaddr*>(&address), sizeof address) == 0;
}

std::uint16_t bound_port(const Socket& socket) {
  sockaddr_in address{};
  socklen_t length = sizeof address;
  ::getsockname(socket.get(), reinterpret_cast<sockaddr*>(&address), &length);
  return ntohs(address.sin_port);
}

// A loopback port free for both UDP and TCP (DNS uses both) at the moment.
std::uint16_t free_port() {
  for (int attempt = 0; attempt < 50; ++attempt) {
    Socket udp(SOCK_DGRAM);
    REQUIRE(bind_to(udp, 0));
    std::uint16_t port = bound_port(udp);
    Socket tcp(SOCK_STREAM);
    if (bind_to(tcp, port)) return port;
  }
  FAIL("no free loopback port");
  return 0;
}

std::string server_address(std::uint16_t port) { return "127.0.0.1:" + std::to_string(port); }

// Asks one question and runs the loop until its answer arrives. Checks too
// that the answer never arrives inside the resolve call itself.
template <class Record>
Answer<Record> ask(TestLoop& loop, const std::function<void(AnswerCallback<Record>)>& question) {
  std::optional<Answer<Record>> answer;
  question([&](Answer<Record> received) { answer = std::move(received); });
  CHECK_FALSE(answer.has_value());
  REQUIRE(loop.run_until([&] { return answer.has_value(); }));
  return std::move(*answer);
}

Answer<MxRecord> ask_mx(TestLoop& loop, Resolver& resolver, const std::string& name) {
  return ask<MxRecord>(loop, [&](auto callback) { resolver.resolve_mx(name, callback); });
}
Answer<std::string> ask_addresses(TestLoop& loop, Resolver& resolver, const std::string& name) {
  return ask<std::string>(loop, [&](auto callback) { resolver.resolve_addresses(name, callback); });
}
Answer<SrvRecord> ask_srv(TestLoop& loop, Resolver& resolver, const std::string& name) {
  return ask<SrvRecord>(loop, [&](auto callback) { resolver.resolve_srv(name, callback); });
}
Answer<std::string> ask_txt(TestLoop& loop, Resolver& resolver, const std::string& name) {
  return ask<std::string>(loop, [&](auto callback) { resolver.resolve_txt(name, callback); });
}

ResolverOptions options_for(const std::string& servers) {
  return ResolverOptions{.servers = servers, .timeout = 500ms, .tries = 2, .cache_entries = 100};
}

// A private dnsmasq answering for .test, stopped (by its PID) on destruction.
class Dnsmasq {
 public:
  explicit Dnsmasq(const std::vector<std::string>& records) {
    std::string pattern = (fs::temp_directory_path() / "stokend-dnsmasq-XXXXXX").string();
    REQUIRE(::mkdtemp(pattern.data()) != nullptr);
    folder_ = pattern;
    REQUIRE(fs::exists(dnsmasq_binary));  // the test suite installs dnsmasq-base
    // Another program may take the chosen port before dnsmasq binds it: then
    // start again on another.
    for (int attempt = 0; attempt < 5; ++attempt) {
      if (start(records)) return;
    }
    FAIL("dnsmasq did not start: " << read_log());
  }

  ~Dnsmasq() {
    stop();
    std::error_code ignored;
    fs::remove_all(folder_, ignored);
  }

  Dnsmasq(const Dnsmasq&) = delete;
  Dnsmasq& operator=(const Dnsmasq&) = delete;

  std::string address() const { return server_address(port_); }

  void stop() {
    if (process_ <= 0) return;
    ::kill(process_, SIGTERM);
    ::waitpid(process_, nullptr, 0);
    process_ = 0;
  }

 private:
  bool start(const std::vector<std::string>& records) {
    port_ = free_port();
    std::vector<std::string> arguments = {
        dnsmasq_binary,
        "--no-daemon",
        "--no-resolv",
        "--no-hosts",
        "--conf-file=/dev/null",
        "--bind-interfaces",
        "--listen-address=127.0.0.1",
        "--port=" + std::to_string(port_),
        "--pid-file=" + (folder_ / "dnsmasq.pid").string(),
        "--log-facility=-",
        // Unknown names under .test get NXDOMAIN instead of REFUSED.
        "--local=/test/",
        // dnsmasq gives its own records a TTL of 0 unless told otherwise.
        "--local-ttl=300",
        "--txt-record=instance.test," + nonce_,
    };
    arguments.insert(arguments.end(), records.begin(), records.end());
    std::string log = (folder_ / "dnsmasq.log").string();

    process_ = ::fork();
    REQUIRE(process_ >= 0);
    if (process_ == 0) {
      int output = ::open(log.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0600);
      if (output >= 0) {
        ::dup2(output, STDOUT_FILENO);
        ::dup2(output, STDERR_FILENO);
      }
      std::vector<char*> argv;
      for (std::string& argument : arguments) argv.push_back(argument.data());
      argv.push_back(nullptr);
      ::execv(dnsmasq_binary, argv.data());
      ::_exit(127);
    }
    return answers_as_itself();
  }

  // Ready once it answers with this instance's nonce, so that a port taken by
  // another program cannot pass for ours. False if dnsmasq exited.
  bool answers_as_itself() {
    TestLoop loop;
    AresResolver resolver(
        loop.base(),
        ResolverOptions{.servers = address(), .timeout = 200ms, .tries = 1, .cache_entries = 0});
    auto deadline = std::chrono::steady_clock::now() + 10s;
    while (std::chrono::steady_clock::now() < deadline) {
      if (::waitpid(process_, nullptr, WNOHANG) == process_) {
        process_ = 0;
        return false;
      }
      std::optional<Answer<std::string>> answer;
      resolver.resolve_txt("instance.test",
                           [&](Answer<std::string> received) { answer = std::move(received); });
      loop.run_until([&] { return answer.has_value(); }, 2s);
      if (answer && answer->records == std::vector<std::string>{nonce_}) return true;
      std::this_thread::sleep_for(20ms);
    }
    stop();
    return false;
  }

  std::string read_log() const {
    std::ifstream input(folder_ / "dnsmasq.log");
    std::ostringstream text;
    text << input.rdbuf();
    return text.str();
  }

  std::string nonce_ = std::to_string(std::random_device{}());
  std::uint16_t port_ = 0;
  fs::path folder_;
  pid_t process_ = 0;
};

// The zone every test serves (dnsmasq's syntax; SRV: target, port, priority, weight).
const std::vector<std::string> test_zone = {
    "--mx-host=multi.test,mx-b.multi.test,20",
    "--mx-host=multi.test,mx-a.multi.test,10",
    "--mx-host=multi.test,mx-c.multi.test,30",
    "--host-record=mx-a.multi.test,127.0.0.3,::3",
    "--host-record=implicit.test,127.0.0.4",
    "--host-record=six.test,::6",
    "--mx-host=nullmx.test,.,0",
    "--txt-record=text.test,v=spf1 ,-all",
    "--txt-record=text.test,second",
    "--srv-host=_submissions._tcp.b.test,low.b.test,465,5,1",
    "--srv-host=_submissions._tcp.b.test,high.b.test,465,10,1",
    "--srv-host=_submission._tcp.b.test,starttls.b.test,587,0,1",
    "--srv-host=_submissions._tcp.none.test",
    "--srv-host=_submission._tcp.none.test",
};

}  // namespace

TEST_CASE("MX records come back with their preferences and TTL", "[dns]") {
  Dnsmasq server(test_zone);
  TestLoop loop;
  AresResolver resolver(loop.base(), options_for(server.address()));

  Answer<MxRecord> answer = ask_mx(loop, resolver, "multi.test");
  REQUIRE(answer.status == Status::ok);
  CHECK(answer.error.empty());
  CHECK(answer.ttl_seconds == 300);
  std::vector<MxRecord> records = answer.records;
  std::sort(records.begin(), records.end(),
            [](const MxRecord& left, const MxRecord& right) { return left.host < right.host; });
  CHECK(records == std::vector<MxRecord>{
                       {10, "mx-a.multi.test"}, {20, "mx-b.multi.test"}, {30, "mx-c.multi.test"}});
}

TEST_CASE("find_mail_exchangers over real DNS orders by preference", "[dns]") {
  Dnsmasq server(test_zone);
  TestLoop loop;
  AresResolver resolver(loop.base(), options_for(server.address()));

  std::optional<MailExchangers> found;
  find_mail_exchangers(resolver, "multi.test", [&](MailExchangers result) { found = result; });
  REQUIRE(loop.run_until([&] { return found.has_value(); }));
  REQUIRE(found->result == MailExchangers::ok);
  CHECK(found->hosts == std::vector<MxRecord>{{10, "mx-a.multi.test"},
                                              {20, "mx-b.multi.test"},
                                              {30, "mx-c.multi.test"}});
}

TEST_CASE("a domain with an address and no MX gets an implicit MX", "[dns]") {
  Dnsmasq server(test_zone);
  TestLoop loop;
  AresResolver resolver(loop.base(), options_for(server.address()));

  Answer<MxRecord> mx = ask_mx(loop, resolver, "implicit.test");
  CHECK(mx.status == Status::no_data);
  CHECK(mx.records.empty());
  CHECK(mx.ttl_seconds == 60);  // no SOA in dnsmasq's answer: the default

  std::optional<MailExchangers> found;
  find_mail_exchangers(resolver, "implicit.test", [&](MailExchangers result) { found = result; });
  REQUIRE(loop.run_until([&] { return found.has_value(); }));
  REQUIRE(found->result == MailExchangers::ok);
  CHECK(found->hosts == std::vector<MxRecord>{{0, "implicit.test"}});
}

TEST_CASE("a null MX is served and read as 'accepts no mail'", "[dns]") {
  Dnsmasq server(test_zone);
  TestLoop loop;
  AresResolver resolver(loop.base(), options_for(server.address()));

  Answer<MxRecord> answer = ask_mx(loop, resolver, "nullmx.test");
  REQUIRE(answer.status == Status::ok);
  CHECK(answer.records == std::vector<MxRecord>{{0, "."}});

  std::optional<MailExchangers> found;
  find_mail_exchangers(resolver, "nullmx.test", [&](MailExchangers result) { found = result; });
  REQUIRE(loop.run_until([&] { return found.has_value(); }));
  CHECK(found->result == MailExchangers::permanent_failure);
  CHECK_THAT(found->error, Catch::Contains("accepts no mail"));
}

TEST_CASE("a name that does not exist is not_found for every type", "[dns]") {
  Dnsmasq server(test_zone);
  TestLoop loop;
  AresResolver resolver(loop.base(), options_for(server.address()));

  Answer<MxRecord> mx = ask_mx(loop, resolver, "missing.test");
  CHECK(mx.status == Status::not_found);
  CHECK_THAT(mx.error, Catch::Contains("missing.test"));
  CHECK(mx.ttl_seconds == 60);
  CHECK(ask_addresses(loop, resolver, "missing.test").status == Status::not_found);
  CHECK(ask_srv(loop, resolver, "_submission._tcp.missing.test").status == Status::not_found);
  CHECK(ask_txt(loop, resolver, "missing.test").status == Status::not_found);

  std::optional<MailExchangers> found;
  find_mail_exchangers(resolver, "missing.test", [&](MailExchangers result) { found = result; });
  REQUIRE(loop.run_until([&] { return found.has_value(); }));
  CHECK(found->result == MailExchangers::permanent_failure);
  CHECK_THAT(found->error, Catch::Contains("domain not found"));
}

TEST_CASE("a name without records of the type asked is no_data", "[dns]") {
  Dnsmasq server(test_zone);
  TestLoop loop;
  AresResolver resolver(loop.base(), options_for(server.address()));

  CHECK(ask_txt(loop, resolver, "implicit.test").status == Status::no_data);
  CHECK(ask_srv(loop, resolver, "implicit.test").status == Status::no_data);
  Answer<std::string> addresses = ask_addresses(loop, resolver, "text.test");
  CHECK(addresses.status == Status::no_data);
  CHECK(addresses.records.empty());

  // Neither MX nor addresses: nowhere to deliver, for good.
  std::optional<MailExchangers> found;
  find_mail_exchangers(resolver, "text.test", [&](MailExchangers result) { found = result; });
  REQUIRE(loop.run_until([&] { return found.has_value(); }));
  CHECK(found->result == MailExchangers::permanent_failure);
}

TEST_CASE("addresses come from A and AAAA, IPv4 first", "[dns]") {
  Dnsmasq server(test_zone);
  TestLoop loop;
  AresResolver resolver(loop.base(), options_for(server.address()));

  Answer<std::string> both = ask_addresses(loop, resolver, "mx-a.multi.test");
  REQUIRE(both.status == Status::ok);
  CHECK(both.records == std::vector<std::string>{"127.0.0.3", "::3"});
  CHECK(both.ttl_seconds == 300);

  Answer<std::string> ipv4_only = ask_addresses(loop, resolver, "implicit.test");
  REQUIRE(ipv4_only.status == Status::ok);
  CHECK(ipv4_only.records == std::vector<std::string>{"127.0.0.4"});

  Answer<std::string> ipv6_only = ask_addresses(loop, resolver, "six.test");
  REQUIRE(ipv6_only.status == Status::ok);
  CHECK(ipv6_only.records == std::vector<std::string>{"::6"});

  // Names compare without case and trailing dot.
  CHECK(ask_addresses(loop, resolver, "SIX.Test.").records == std::vector<std::string>{"::6"});
}

TEST_CASE("IP literals are their own addresses, without a query", "[dns]") {
  TestLoop loop;
  // Nothing listens there; a query would fail.
  AresResolver resolver(loop.base(), options_for(server_address(free_port())));
  CHECK(ask_addresses(loop, resolver, "192.0.2.7").records ==
        std::vector<std::string>{"192.0.2.7"});
  CHECK(ask_addresses(loop, resolver, "2001:db8::7").records ==
        std::vector<std::string>{"2001:db8::7"});
}

TEST_CASE("SRV records and discovery of submission servers", "[dns]") {
  Dnsmasq server(test_zone);
  TestLoop loop;
  AresResolver resolver(loop.base(), options_for(server.address()));

  Answer<SrvRecord> answer = ask_srv(loop, resolver, "_submissions._tcp.b.test");
  REQUIRE(answer.status == Status::ok);
  std::vector<SrvRecord> records = answer.records;
  std::sort(records.begin(), records.end(), [](const SrvRecord& left, const SrvRecord& right) {
    return left.priority < right.priority;
  });
  CHECK(records == std::vector<SrvRecord>{{5, 1, 465, "low.b.test"}, {10, 1, 465, "high.b.test"}});

  Answer<SrvRecord> unavailable = ask_srv(loop, resolver, "_submission._tcp.none.test");
  REQUIRE(unavailable.status == Status::ok);
  REQUIRE(unavailable.records.size() == 1);
  CHECK(unavailable.records[0].target == ".");

  std::optional<SubmissionServers> found;
  find_submission_servers(resolver, "b.test", [&](SubmissionServers result) { found = result; });
  REQUIRE(loop.run_until([&] { return found.has_value(); }));
  REQUIRE(found->result == SubmissionServers::ok);
  CHECK(found->servers == std::vector<SubmissionServer>{{"low.b.test", 465, true},
                                                        {"high.b.test", 465, true},
                                                        {"starttls.b.test", 587, false}});

  found.reset();
  find_submission_servers(resolver, "none.test", [&](SubmissionServers result) { found = result; });
  REQUIRE(loop.run_until([&] { return found.has_value(); }));
  CHECK(found->result == SubmissionServers::not_available);
  CHECK(found->servers.empty());
}

TEST_CASE("TXT records: one string per record, character-strings joined", "[dns]") {
  Dnsmasq server(test_zone);
  TestLoop loop;
  AresResolver resolver(loop.base(), options_for(server.address()));

  Answer<std::string> answer = ask_txt(loop, resolver, "text.test");
  REQUIRE(answer.status == Status::ok);
  std::vector<std::string> records = answer.records;
  std::sort(records.begin(), records.end());
  CHECK(records == std::vector<std::string>{"second", "v=spf1 -all"});
}

TEST_CASE("answers are cached, positive and negative, for their TTL", "[dns]") {
  Dnsmasq server(test_zone);
  TestLoop loop;
  ResolverOptions options = options_for(server.address());
  options.timeout = 200ms;
  options.tries = 1;
  AresResolver resolver(loop.base(), options);

  Answer<MxRecord> first = ask_mx(loop, resolver, "multi.test");
  REQUIRE(first.status == Status::ok);
  REQUIRE(ask_mx(loop, resolver, "missing.test").status == Status::not_found);
  REQUIRE(ask_addresses(loop, resolver, "mx-a.multi.test").status == Status::ok);

  server.stop();

  // Answered from the cache, still never inside the call (ask() checks).
  Answer<MxRecord> cached = ask_mx(loop, resolver, "MULTI.test.");
  CHECK(cached.status == Status::ok);
  CHECK(cached.records == first.records);
  CHECK(cached.ttl_seconds > 0);
  CHECK(cached.ttl_seconds <= 300);
  CHECK(ask_mx(loop, resolver, "missing.test").status == Status::not_found);
  CHECK(ask_addresses(loop, resolver, "mx-a.multi.test").records ==
        std::vector<std::string>{"127.0.0.3", "::3"});

  // A question not asked before needs the server, which is gone.
  Answer<MxRecord> uncached = ask_mx(loop, resolver, "implicit.test");
  CHECK(uncached.status == Status::temporary_failure);
}

TEST_CASE("a server that never answers gives temporary_failure after the timeout", "[dns]") {
  // A bound UDP socket that nobody reads: queries vanish without an error.
  Socket silent(SOCK_DGRAM);
  REQUIRE(bind_to(silent, 0));
  TestLoop loop;
  ResolverOptions options = options_for(server_address(bound_port(silent)));
  options.timeout = 200ms;
  options.tries = 1;
  AresResolver resolver(loop.base(), options);

  auto start = std::chrono::steady_clock::now();
  Answer<MxRecord> answer = ask_mx(loop, resolver, "multi.test");
  auto elapsed = std::chrono::steady_clock::now() - start;
  CHECK(answer.status == Status::temporary_failure);
  CHECK_FALSE(answer.error.empty());
  CHECK(elapsed >= 150ms);
  CHECK(elapsed < 3s);

  // Temporary failures are not cached.
  start = std::chrono::steady_clock::now();
  CHECK(ask_mx(loop, resolver, "multi.test").status == Status::temporary_failure);
  CHECK(std::chrono::steady_clock::now() - start >= 150ms);

  // A failure in one family only is still a temporary failure of the host.
  CHECK(ask_addresses(loop, resolver, "implicit.test").status == Status::temporary_failure);
}

TEST_CASE("a port with nothing listening gives temporary_failure", "[dns]") {
  TestLoop loop;
  ResolverOptions options = options_for(server_address(free_port()));
  options.timeout = 200ms;
  options.tries = 1;
  AresResolver resolver(loop.base(), options);

  Answer<std::string> answer = ask_txt(loop, resolver, "text.test");
  CHECK(answer.status == Status::temporary_failure);
  CHECK_THAT(answer.error, Catch::Contains("TXT lookup for text.test"));
}

TEST_CASE("an invalid name is not_found at once, yet answered asynchronously", "[dns]") {
  TestLoop loop;
  AresResolver resolver(loop.base(), options_for(server_address(free_port())));
  Answer<MxRecord> answer = ask_mx(loop, resolver, "bad..test");
  CHECK(answer.status == Status::not_found);
  CHECK(answer.ttl_seconds == 0);
}

TEST_CASE("no callback runs after the resolver is destroyed", "[dns]") {
  Socket silent(SOCK_DGRAM);
  REQUIRE(bind_to(silent, 0));
  TestLoop loop;
  ResolverOptions options = options_for(server_address(bound_port(silent)));
  options.timeout = 100ms;
  options.tries = 1;
  auto resolver = std::make_unique<AresResolver>(loop.base(), options);

  int calls = 0;
  resolver->resolve_mx("multi.test", [&](Answer<MxRecord>) { ++calls; });
  resolver->resolve_addresses("192.0.2.1", [&](Answer<std::string>) { ++calls; });
  resolver.reset();
  loop.run_for(400ms);
  CHECK(calls == 0);
}

TEST_CASE("a callback may destroy the resolver that calls it", "[dns]") {
  Dnsmasq server(test_zone);
  TestLoop loop;
  auto resolver = std::make_unique<AresResolver>(loop.base(), options_for(server.address()));

  int calls = 0;
  resolver->resolve_mx("multi.test", [&](Answer<MxRecord> answer) {
    ++calls;
    CHECK(answer.status == Status::ok);
    resolver.reset();
  });
  resolver->resolve_mx("multi.test", [&](Answer<MxRecord>) { ++calls; });
  REQUIRE(loop.run_until([&] { return resolver == nullptr; }));
  loop.run_for(200ms);
  CHECK(calls == 1);
}

TEST_CASE("a malformed server list is refused at construction", "[dns]") {
  TestLoop loop;
  CHECK_THROWS_AS(AresResolver(loop.base(), options_for("not an address")), std::runtime_error);
}
