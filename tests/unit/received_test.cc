// Unit tests for the Received trace header (message/received.h).
#include "message/received.h"

#include <algorithm>
#include <catch2/catch.hpp>
#include <cstdlib>
#include <ctime>
#include <optional>
#include <sstream>
#include <string>
#include <vector>

using namespace stokend;
using namespace stokend::message;
using namespace std::chrono;

namespace {

// Sets the TZ environment variable for one test and restores it afterwards.
class TimeZone {
 public:
  explicit TimeZone(const char* zone) {
    if (const char* current = std::getenv("TZ")) previous_ = current;
    ::setenv("TZ", zone, 1);
    ::tzset();
  }
  ~TimeZone() {
    if (previous_) {
      ::setenv("TZ", previous_->c_str(), 1);
    } else {
      ::unsetenv("TZ");
    }
    ::tzset();
  }
  TimeZone(const TimeZone&) = delete;
  TimeZone& operator=(const TimeZone&) = delete;

 private:
  std::optional<std::string> previous_;
};

const system_clock::time_point noon_22_november_2026 =
    sys_days{year{2026} / November / 22} + hours{12};

ReceivedInfo sample() {
  ReceivedInfo info;
  info.helo_name = "client.example.org";
  info.client_address = "192.0.2.7";
  info.by_host = "mx.example.net";
  info.protocol = "ESMTPS";
  info.id = "0123456789abcdef";
  info.recipient = "bob@example.net";
  info.tls_description = "TLS1.3 TLS_AES_256_GCM_SHA384";
  info.when = noon_22_november_2026;
  return info;
}

std::vector<std::string> lines_of(const std::string& header) {
  std::vector<std::string> lines;
  std::size_t start = 0;
  while (start < header.size()) {
    const std::size_t end = header.find("\r\n", start);
    REQUIRE(end != std::string::npos);
    lines.push_back(header.substr(start, end - start));
    start = end + 2;
  }
  return lines;
}

void check_well_formed(const std::string& header) {
  REQUIRE(header.rfind("Received: ", 0) == 0);
  REQUIRE(header.size() >= 2);
  CHECK(header.substr(header.size() - 2) == "\r\n");
  const auto lines = lines_of(header);
  for (std::size_t i = 0; i < lines.size(); ++i) {
    if (i > 0) CHECK(lines[i].rfind('\t', 0) == 0);  // continuation lines are folded
    CHECK(lines[i].find_first_of("\r\n") == std::string::npos);
  }
}

}  // namespace

TEST_CASE("received: the complete header for a TLS session with one recipient", "[received]") {
  TimeZone zone("UTC0");
  const std::string header = received_header(sample());
  CHECK(header ==
        "Received: from client.example.org ([192.0.2.7])\r\n"
        "\tby mx.example.net (stokend) with ESMTPS id 0123456789abcdef\r\n"
        "\t(TLS1.3 TLS_AES_256_GCM_SHA384)\r\n"
        "\tfor <bob@example.net>; Sun, 22 Nov 2026 12:00:00 +0000\r\n");
  check_well_formed(header);
}

TEST_CASE("received: no TLS and several recipients: no comment, no for clause", "[received]") {
  TimeZone zone("UTC0");
  ReceivedInfo info = sample();
  info.tls_description.clear();
  info.recipient.clear();
  info.protocol = "ESMTP";
  const std::string header = received_header(info);
  CHECK(header ==
        "Received: from client.example.org ([192.0.2.7])\r\n"
        "\tby mx.example.net (stokend) with ESMTP id 0123456789abcdef;\r\n"
        "\tSun, 22 Nov 2026 12:00:00 +0000\r\n");
  CHECK(header.find(" for ") == std::string::npos);
  check_well_formed(header);
}

TEST_CASE("received: the protocol word is written as given (RFC 3848)", "[received]") {
  for (const char* protocol : {"SMTP", "ESMTP", "ESMTPA", "ESMTPS", "ESMTPSA", "LMTPSA"}) {
    ReceivedInfo info = sample();
    info.protocol = protocol;
    CHECK(received_header(info).find(std::string(" with ") + protocol + " id ") !=
          std::string::npos);
  }
}

TEST_CASE("received: with_protocol names SMTP, ESMTP, LMTP with S and A (RFC 3848)", "[received]") {
  CHECK(with_protocol({}) == "SMTP");
  CHECK(with_protocol({.extended = true}) == "ESMTP");
  CHECK(with_protocol({.extended = true, .tls = true}) == "ESMTPS");
  CHECK(with_protocol({.extended = true, .authenticated = true}) == "ESMTPA");
  CHECK(with_protocol({.extended = true, .tls = true, .authenticated = true}) == "ESMTPSA");
  CHECK(with_protocol({.lmtp = true, .extended = true}) == "LMTP");
  CHECK(with_protocol({.lmtp = true, .extended = true, .tls = true, .authenticated = true}) ==
        "LMTPSA");
}

TEST_CASE("received: with SMTPUTF8 the protocol is UTF8SMTP or UTF8LMTP (RFC 6531 3.7.3)",
          "[received]") {
  CHECK(with_protocol({.extended = true, .smtputf8 = true}) == "UTF8SMTP");
  CHECK(with_protocol({.extended = true, .tls = true, .smtputf8 = true}) == "UTF8SMTPS");
  CHECK(with_protocol({.extended = true, .authenticated = true, .smtputf8 = true}) == "UTF8SMTPA");
  CHECK(with_protocol({.extended = true, .tls = true, .authenticated = true, .smtputf8 = true}) ==
        "UTF8SMTPSA");
  CHECK(
      with_protocol(
          {.lmtp = true, .extended = true, .tls = true, .authenticated = true, .smtputf8 = true}) ==
      "UTF8LMTPSA");
  CHECK(with_protocol({.lmtp = true, .extended = true, .smtputf8 = true}) == "UTF8LMTP");
  ReceivedInfo info = sample();
  info.protocol = with_protocol({.extended = true, .tls = true, .smtputf8 = true});
  CHECK(received_header(info).find(" with UTF8SMTPS id ") != std::string::npos);
}

TEST_CASE("received: the for clause names the single recipient in angle brackets", "[received]") {
  ReceivedInfo info = sample();
  info.recipient = "<already@bracketed.example>";
  CHECK(received_header(info).find("\tfor <already@bracketed.example>; ") != std::string::npos);
  info.recipient = "j\xc3\xbcrgen@example.de";  // SMTPUTF8 (RFC 6531) stays as it is
  CHECK(received_header(info).find("for <j\xc3\xbcrgen@example.de>;") != std::string::npos);
}

TEST_CASE("received: IPv6 clients get an IPv6 address literal (RFC 5321 4.1.3)", "[received]") {
  ReceivedInfo info = sample();
  info.client_address = "2001:db8::25";
  CHECK(received_header(info).find("from client.example.org ([IPv6:2001:db8::25])\r\n") !=
        std::string::npos);
}

TEST_CASE("received: the client's HELO name is sanitised", "[received]") {
  ReceivedInfo info = sample();

  SECTION("comment, clause and line-break injection") {
    info.helo_name = "evil (by trusted.example with ESMTPS);\r\nX-Injected: yes\\";
    const std::string header = received_header(info);
    check_well_formed(header);
    CHECK(header.find("X-Injected: yes") == std::string::npos);
    CHECK(header.find("trusted.example with") == std::string::npos);
    CHECK(header.rfind("Received: from evil??by?trusted.example?with?ESMTPS????X-Injected:?yes?\r\n"
                       "\t([192.0.2.7])\r\n",
                       0) == 0);
    // Exactly one ';' (before the date) and the only parentheses are ours.
    CHECK(std::count(header.begin(), header.end(), ';') == 1);
    CHECK(std::count(header.begin(), header.end(), '(') == 3);
  }
  SECTION("non-ASCII and control bytes are replaced") {
    info.helo_name = std::string("h\xc3\xa9llo\x01\0x", 9);
    CHECK(received_header(info).rfind("Received: from h??llo??x ([192.0.2.7])", 0) == 0);
  }
  SECTION("an empty HELO name is replaced by the address literal") {
    info.helo_name.clear();
    CHECK(received_header(info).rfind("Received: from [192.0.2.7] ([192.0.2.7])\r\n", 0) == 0);
  }
  SECTION("an address-literal HELO is kept") {
    info.helo_name = "[192.0.2.7]";
    CHECK(received_header(info).rfind("Received: from [192.0.2.7] ([192.0.2.7])\r\n", 0) == 0);
  }
  SECTION("an overlong HELO name is truncated") {
    info.helo_name = std::string(1000, 'a');
    const std::string header = received_header(info);
    check_well_formed(header);
    CHECK(header.find(std::string(255, 'a')) != std::string::npos);
    CHECK(header.find(std::string(256, 'a')) == std::string::npos);
  }
}

TEST_CASE("received: long values are folded within 78 characters where possible", "[received]") {
  ReceivedInfo info = sample();
  info.helo_name = "a-rather-long-client-name.with.many.labels.example.org";
  info.by_host = "a-long-relay-host-name.subdomain.example.net";
  info.id = "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123";
  info.recipient = "someone.with.a.long.name@a.long.recipient.domain.example.com";
  const std::string header = received_header(info);
  check_well_formed(header);
  for (const std::string& line : lines_of(header)) CHECK(line.size() <= 78);
  CHECK(header.find("\tid ABCDEFGHIJKLMNOPQRSTUVWXYZ0123") != std::string::npos);
}

TEST_CASE("rfc5322_date uses fixed English names and a numeric zone", "[received]") {
  SECTION("UTC") {
    TimeZone zone("UTC0");
    CHECK(rfc5322_date(noon_22_november_2026) == "Sun, 22 Nov 2026 12:00:00 +0000");
    CHECK(rfc5322_date(sys_days{year{2024} / February / 29} + hours{1} + minutes{2} + seconds{3}) ==
          "Thu, 29 Feb 2024 01:02:03 +0000");
  }
  SECTION("east of UTC, with minutes") {
    TimeZone zone("IST-5:30");
    CHECK(rfc5322_date(noon_22_november_2026) == "Sun, 22 Nov 2026 17:30:00 +0530");
  }
  SECTION("west of UTC, crossing midnight") {
    TimeZone zone("NST+3:30");
    CHECK(rfc5322_date(sys_days{year{2026} / November / 22} + hours{1}) ==
          "Sat, 21 Nov 2026 21:30:00 -0330");
  }
}
