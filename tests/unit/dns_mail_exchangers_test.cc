// Tests of the RFC 5321 section 5.1 MX logic and of RFC 6186 / RFC 8314
// submission server discovery, over FakeResolver; and of FakeResolver itself.
#include <catch2/catch.hpp>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "common/event_handles.h"
#include "dns/mail_exchangers.h"
#include "dns/submission_servers.h"
#include "tests/support/fake_resolver.h"

using namespace stokend;
using namespace stokend::dns;

namespace {

using stokend::EventBasePtr;

// A loop and a fake resolver on it. FakeResolver only uses zero-timeout
// events, so dispatching returns once every answer is delivered.
struct FakeDns {
  EventBasePtr base{event_base_new()};
  FakeResolver resolver{base.get()};

  void run() { REQUIRE(event_base_dispatch(base.get()) >= 0); }

  MailExchangers mail_exchangers(const std::string& domain) {
    std::optional<MailExchangers> found;
    find_mail_exchangers(resolver, domain, [&](MailExchangers result) { found = result; });
    CHECK_FALSE(found.has_value());  // never answered inside the call
    run();
    REQUIRE(found.has_value());
    return *found;
  }

  SubmissionServers submission_servers(const std::string& domain) {
    std::optional<SubmissionServers> found;
    find_submission_servers(resolver, domain, [&](SubmissionServers result) { found = result; });
    CHECK_FALSE(found.has_value());
    run();
    REQUIRE(found.has_value());
    return *found;
  }
};

const Answer<std::string> some_address = ok_answer<std::string>({"192.0.2.25"});

}  // namespace

TEST_CASE("MX hosts are sorted by preference", "[dns]") {
  FakeDns dns;
  dns.resolver.set_mx("example.test", ok_answer<MxRecord>({{30, "c.example.test"},
                                                           {10, "a.example.test"},
                                                           {20, "b.example.test"}}));
  MailExchangers found = dns.mail_exchangers("example.test");
  REQUIRE(found.result == MailExchangers::ok);
  CHECK(found.error.empty());
  CHECK(found.hosts == std::vector<MxRecord>{
                           {10, "a.example.test"}, {20, "b.example.test"}, {30, "c.example.test"}});
  CHECK(dns.resolver.questions() == std::vector<std::string>{"MX example.test"});
}

TEST_CASE("MX hosts of equal preference come in random order", "[dns]") {
  FakeDns dns;
  dns.resolver.set_mx("example.test", ok_answer<MxRecord>({{20, "last.example.test"},
                                                           {10, "one.example.test"},
                                                           {10, "two.example.test"}}));
  std::set<std::string> seen_first;
  for (int attempt = 0; attempt < 100; ++attempt) {
    MailExchangers found = dns.mail_exchangers("example.test");
    REQUIRE(found.hosts.size() == 3);
    CHECK(found.hosts[0].preference == 10);
    CHECK(found.hosts[1].preference == 10);
    CHECK(found.hosts[2] == MxRecord{20, "last.example.test"});
    seen_first.insert(found.hosts[0].host);
  }
  // Chance of seeing only one of them first in 100 tries: 2 in 2^100.
  CHECK(seen_first == std::set<std::string>{"one.example.test", "two.example.test"});
}

TEST_CASE("no MX records means the implicit MX, if the domain has an address", "[dns]") {
  FakeDns dns;
  SECTION("NODATA") {
    dns.resolver.set_mx("example.test", failed_answer<MxRecord>(Status::no_data));
  }
  SECTION("an ok answer without records") {
    dns.resolver.set_mx("example.test", ok_answer<MxRecord>({}));
  }
  dns.resolver.set_addresses("example.test", some_address);

  MailExchangers found = dns.mail_exchangers("example.test");
  REQUIRE(found.result == MailExchangers::ok);
  CHECK(found.hosts == std::vector<MxRecord>{{0, "example.test"}});
  CHECK(dns.resolver.questions() ==
        std::vector<std::string>{"MX example.test", "ADDRESSES example.test"});
}

TEST_CASE("no MX and no address is a permanent failure", "[dns]") {
  FakeDns dns;
  dns.resolver.set_mx("example.test", failed_answer<MxRecord>(Status::no_data));
  SECTION("addresses NODATA") {
    dns.resolver.set_addresses("example.test", failed_answer<std::string>(Status::no_data));
  }
  SECTION("addresses NXDOMAIN") {
    dns.resolver.set_addresses("example.test", failed_answer<std::string>(Status::not_found));
  }
  MailExchangers found = dns.mail_exchangers("example.test");
  CHECK(found.result == MailExchangers::permanent_failure);
  CHECK(found.hosts.empty());
  CHECK_THAT(found.error, Catch::Contains("example.test"));
}

TEST_CASE("no MX and a temporary address failure is a temporary failure", "[dns]") {
  FakeDns dns;
  dns.resolver.set_mx("example.test", failed_answer<MxRecord>(Status::no_data));
  dns.resolver.set_addresses("example.test",
                             failed_answer<std::string>(Status::temporary_failure, "timeout"));
  MailExchangers found = dns.mail_exchangers("example.test");
  CHECK(found.result == MailExchangers::temporary_failure);
  CHECK(found.error == "timeout");
}

TEST_CASE("a domain that does not exist is a permanent failure", "[dns]") {
  FakeDns dns;  // no preset answer: not_found
  MailExchangers found = dns.mail_exchangers("missing.test");
  CHECK(found.result == MailExchangers::permanent_failure);
  CHECK_THAT(found.error, Catch::Contains("domain not found"));
  CHECK(dns.resolver.questions() == std::vector<std::string>{"MX missing.test"});
}

TEST_CASE("a null MX means the domain accepts no mail (RFC 7505)", "[dns]") {
  FakeDns dns;
  SECTION("host \".\"") { dns.resolver.set_mx("example.test", ok_answer<MxRecord>({{0, "."}})); }
  SECTION("empty host") { dns.resolver.set_mx("example.test", ok_answer<MxRecord>({{0, ""}})); }
  MailExchangers found = dns.mail_exchangers("example.test");
  CHECK(found.result == MailExchangers::permanent_failure);
  CHECK_THAT(found.error, Catch::Contains("domain accepts no mail"));
  // The implicit MX must not be tried.
  CHECK(dns.resolver.questions() == std::vector<std::string>{"MX example.test"});
}

TEST_CASE("a null MX next to real MX records is ignored", "[dns]") {
  FakeDns dns;
  dns.resolver.set_mx("example.test", ok_answer<MxRecord>({{0, "."}, {10, "mx.example.test"}}));
  MailExchangers found = dns.mail_exchangers("example.test");
  REQUIRE(found.result == MailExchangers::ok);
  CHECK(found.hosts == std::vector<MxRecord>{{10, "mx.example.test"}});
}

TEST_CASE("a temporary MX failure is a temporary failure", "[dns]") {
  FakeDns dns;
  dns.resolver.set_mx("example.test",
                      failed_answer<MxRecord>(Status::temporary_failure, "MX lookup: timeout"));
  dns.resolver.set_addresses("example.test", some_address);
  MailExchangers found = dns.mail_exchangers("example.test");
  CHECK(found.result == MailExchangers::temporary_failure);
  CHECK(found.error == "MX lookup: timeout");
  CHECK(found.hosts.empty());
}

TEST_CASE("submission servers: implicit TLS first, each in priority order", "[dns]") {
  FakeDns dns;
  dns.resolver.set_srv("_submissions._tcp.example.test",
                       ok_answer<SrvRecord>({{20, 0, 465, "backup.example.test"},
                                             {10, 0, 465, "main.example.test"}}));
  dns.resolver.set_srv("_submission._tcp.example.test",
                       ok_answer<SrvRecord>({{0, 0, 587, "starttls.example.test"}}));
  SubmissionServers found = dns.submission_servers("example.test");
  REQUIRE(found.result == SubmissionServers::ok);
  CHECK(found.servers == std::vector<SubmissionServer>{{"main.example.test", 465, true},
                                                       {"backup.example.test", 465, true},
                                                       {"starttls.example.test", 587, false}});
  CHECK(dns.resolver.questions() == std::vector<std::string>{"SRV _submissions._tcp.example.test",
                                                             "SRV _submission._tcp.example.test"});
}

TEST_CASE("submission servers: a \".\" target means the service is not available", "[dns]") {
  FakeDns dns;
  dns.resolver.set_srv("_submissions._tcp.example.test", ok_answer<SrvRecord>({{0, 0, 0, "."}}));
  SECTION("and the other service is offered") {
    dns.resolver.set_srv("_submission._tcp.example.test",
                         ok_answer<SrvRecord>({{0, 0, 587, "starttls.example.test"}}));
    SubmissionServers found = dns.submission_servers("example.test");
    REQUIRE(found.result == SubmissionServers::ok);
    CHECK(found.servers == std::vector<SubmissionServer>{{"starttls.example.test", 587, false}});
  }
  SECTION("and the other one is not either") {
    dns.resolver.set_srv("_submission._tcp.example.test", ok_answer<SrvRecord>({{0, 0, 0, "."}}));
    SubmissionServers found = dns.submission_servers("example.test");
    CHECK(found.result == SubmissionServers::not_available);
    CHECK(found.servers.empty());
    CHECK_FALSE(found.error.empty());
  }
}

TEST_CASE("submission servers: nothing published", "[dns]") {
  FakeDns dns;
  dns.resolver.set_srv("_submissions._tcp.example.test", failed_answer<SrvRecord>(Status::no_data));
  SubmissionServers found = dns.submission_servers("example.test");  // other: not_found
  CHECK(found.result == SubmissionServers::not_available);
}

TEST_CASE("submission servers: temporary failures", "[dns]") {
  FakeDns dns;
  dns.resolver.set_srv("_submissions._tcp.example.test",
                       failed_answer<SrvRecord>(Status::temporary_failure, "SERVFAIL"));
  SECTION("with no server at all, the discovery fails temporarily") {
    SubmissionServers found = dns.submission_servers("example.test");
    CHECK(found.result == SubmissionServers::temporary_failure);
    CHECK(found.error == "SERVFAIL");
  }
  SECTION("the servers found are still used") {
    dns.resolver.set_srv("_submission._tcp.example.test",
                         ok_answer<SrvRecord>({{0, 0, 587, "starttls.example.test"}}));
    SubmissionServers found = dns.submission_servers("example.test");
    REQUIRE(found.result == SubmissionServers::ok);
    CHECK(found.servers == std::vector<SubmissionServer>{{"starttls.example.test", 587, false}});
  }
}

TEST_CASE("FakeResolver answers later, from presets, and never after destruction", "[dns]") {
  EventBasePtr base(event_base_new());
  auto resolver = std::make_unique<FakeResolver>(base.get());
  resolver->set_txt("text.test", ok_answer<std::string>({"hello"}, 42));

  std::optional<Answer<std::string>> text;
  std::optional<Answer<SrvRecord>> unknown;
  std::optional<Answer<std::string>> literal;
  resolver->resolve_txt("text.test", [&](Answer<std::string> answer) { text = answer; });
  resolver->resolve_srv("_x._tcp.test", [&](Answer<SrvRecord> answer) { unknown = answer; });
  resolver->resolve_addresses("::1", [&](Answer<std::string> answer) { literal = answer; });
  CHECK_FALSE(text.has_value());
  event_base_dispatch(base.get());
  REQUIRE(text.has_value());
  CHECK(text->status == Status::ok);
  CHECK(text->records == std::vector<std::string>{"hello"});
  CHECK(text->ttl_seconds == 42);
  REQUIRE(unknown.has_value());
  CHECK(unknown->status == Status::not_found);
  REQUIRE(literal.has_value());
  CHECK(literal->records == std::vector<std::string>{"::1"});

  bool called = false;
  resolver->resolve_txt("text.test", [&](Answer<std::string>) { called = true; });
  resolver.reset();
  event_base_dispatch(base.get());
  CHECK_FALSE(called);
}
