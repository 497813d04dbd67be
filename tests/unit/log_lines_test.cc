// Unit tests for the Postfix-shaped log lines (common/log_lines.h) and the
// pieces a session takes for them (mta/server/session_log.h). The shapes are
// the ones pflogsumm's and fail2ban's regexes read: the end-to-end test
// test_operator_logs.py runs the real tools on a real log.
#include "common/log_lines.h"

#include <catch2/catch.hpp>
#include <regex>
#include <string>

#include "mta/server/session_log.h"

using namespace stokend;

TEST_CASE("the to= line carries relay, delays, dsn and status as Postfix writes them",
          "[log_lines]") {
  log_lines::Delivery line;
  line.recipient = "bob@remote.test";
  line.relay = log_lines::endpoint("mx.remote.test", "192.0.2.7", 25);
  line.in_queue = 0.004;
  line.transmission = 1.236;
  line.status = log_lines::Status::sent;
  line.reply = "250 2.0.0 Ok: queued as 4F2";
  CHECK(log_lines::delivery(line) ==
        "to=<bob@remote.test>, relay=mx.remote.test[192.0.2.7]:25, delay=1.24, "
        "delays=0/0/0/1.24, dsn=2.0.0, status=sent (250 2.0.0 Ok: queued as 4F2)");

  line.status = log_lines::Status::deferred;
  line.reply = "451 4.3.0 try again";
  line.in_queue = 72;
  line.transmission = 0.5;
  CHECK(log_lines::delivery(line) ==
        "to=<bob@remote.test>, relay=mx.remote.test[192.0.2.7]:25, delay=72.5, "
        "delays=0/72/0/0.5, dsn=4.3.0, status=deferred (451 4.3.0 try again)");

  line.status = log_lines::Status::bounced;
  line.reply = "550 no such user";  // no enhanced code: the class's
  CHECK(log_lines::delivery(line).find("dsn=5.0.0, status=bounced (550 no such user)") !=
        std::string::npos);
}

TEST_CASE("pflogsumm's regex for to= lines reads the line", "[log_lines]") {
  // pflogsumm 1.1.5, the regex of its delivery lines, verbatim.
  const std::regex pflogsumm(
      R"(to=<([^>]*)>, (?:orig_to=<[^>]*>, )?relay=([^,]+), (?:conn_use=[^,]+, )?delay=([^,]+), )"
      R"((?:delays=[^,]+, )?(?:dsn=[^,]+, )?status=(\S+)(.*)$)");
  log_lines::Delivery line;
  line.recipient = "alice@local.test";
  line.relay = "local";
  line.transmission = 0.01;
  line.status = log_lines::Status::sent;
  line.reply = "250 2.0.0 Saved 1765.M1P2.mx,S=300";
  std::smatch match;
  const std::string text = log_lines::delivery(line);
  REQUIRE(std::regex_search(text, match, pflogsumm));
  CHECK(match[1] == "alice@local.test");
  CHECK(match[2] == "local");
  CHECK(match[3] == "0.01");
  CHECK(match[4] == "sent");
}

TEST_CASE("IPv6 addresses are bracketed, with the port after the bracket", "[log_lines]") {
  CHECK(log_lines::client("::1") == "unknown[::1]");
  CHECK(log_lines::client("2001:db8::7", "mail.example") == "mail.example[2001:db8::7]");
  CHECK(log_lines::endpoint("mx.example", "2001:db8::25", 25) == "mx.example[2001:db8::25]:25");
  CHECK(log_lines::endpoint("", "::1", 2525) == "[::1]:2525");
}

TEST_CASE("the reject line is smtpd's NOQUEUE line", "[log_lines]") {
  log_lines::Reject line;
  line.stage = "RCPT";
  line.client = log_lines::client("::1");
  line.reply = "550 5.1.1 <nobody@local.test>: Recipient address rejected: user unknown";
  line.sender_known = true;
  line.sender = "carol@remote.test";
  line.recipient = "nobody@local.test";
  line.protocol = "ESMTP";
  line.helo = "client.remote.test";
  const std::string text = log_lines::reject(line);
  CHECK(text ==
        "NOQUEUE: reject: RCPT from unknown[::1]: 550 5.1.1 <nobody@local.test>: Recipient "
        "address rejected: user unknown; from=<carol@remote.test> to=<nobody@local.test> "
        "proto=ESMTP helo=<client.remote.test>");
  // fail2ban's postfix filter, mode normal (after its prefix "\w+: reject:").
  const std::regex fail2ban(
      R"(^[A-Z]{4} from [^[]*\[(\S+)\](?::\d+)?: [45][50][04] [45]\.\d\.\d+ (?:(?:<[^>]*>)?: )?)"
      R"((?:(?:Helo command|(?:Sender|Recipient) address) rejected: )?(?:Service unavailable|)"
      R"((?:Client host|Command|Data command) rejected|Relay access denied|(?:Host|Domain) not )"
      R"(found|need fully-qualified hostname|match|[Uu](?:ser unknown|ndeliverable address))\b)");
  std::smatch match;
  const std::string after_prefix = text.substr(std::string("NOQUEUE: reject: ").size());
  REQUIRE(std::regex_search(after_prefix, match, fail2ban));
  CHECK(match[1] == "::1");

  // A refused MAIL: no recipient; the null sender is from=<>.
  log_lines::Reject mail;
  mail.stage = "MAIL";
  mail.client = log_lines::client("192.0.2.1");
  mail.reply = "552 5.3.4 Message size exceeds fixed limit";
  mail.sender_known = true;
  mail.protocol = "SMTP";
  CHECK(log_lines::reject(mail) ==
        "NOQUEUE: reject: MAIL from unknown[192.0.2.1]: 552 5.3.4 Message size exceeds fixed "
        "limit; from=<> proto=SMTP");
}

TEST_CASE("text from peers cannot start a line of its own", "[log_lines]") {
  CHECK(log_lines::printable("a\r\nJan  1 host stokend/smtpd[1]: forged\x7f") ==
        "a??Jan  1 host stokend/smtpd[1]: forged?");
  log_lines::Reject line;
  line.stage = "RCPT";
  line.client = log_lines::client("192.0.2.1");
  line.reply = "550 5.7.1 x";
  line.protocol = "ESMTP";
  line.helo = "evil\nstokend/smtpd[1]: warning: unknown[10.0.0.1]: SASL LOGIN authentication";
  CHECK(log_lines::reject(line).find('\n') == std::string::npos);
}

TEST_CASE("durations and status codes as Postfix logs them", "[log_lines]") {
  CHECK(log_lines::seconds(0) == "0");
  CHECK(log_lines::seconds(-3) == "0");
  CHECK(log_lines::seconds(0.004) == "0");
  CHECK(log_lines::seconds(0.126) == "0.13");
  CHECK(log_lines::seconds(3.5) == "3.5");
  CHECK(log_lines::seconds(72) == "72");
  CHECK(log_lines::dsn_of("250 2.1.12 <a@b> id delivered") == "2.1.12");
  CHECK(log_lines::dsn_of("451 busy") == "4.0.0");
  CHECK(log_lines::dsn_of("550 4.1.1 mismatched class") == "5.0.0");
  CHECK(log_lines::dsn_of("connect to mx.example: Connection refused") == "4.0.0");
  CHECK(log_lines::dsn_of("999 what") == "4.0.0");
}

TEST_CASE("a session logs the path of MAIL and RCPT, never their parameters", "[log_lines]") {
  CHECK(server::logged_path("FROM:<alice@local.test> SIZE=10") == "alice@local.test");
  CHECK(server::logged_path("FROM:<>") == "");
  CHECK(server::logged_path("TO:<bob@local.test> STOKEN=secret MYSTOKEN=secret2") ==
        "bob@local.test");
  CHECK(server::logged_path("TO:bob@local.test STOKEN=<secret>") == "");
  CHECK(server::logged_path("TO: <bob@local.test>") == "bob@local.test");
  CHECK(server::logged_path("TO:bob") == "");
  CHECK(server::logged_path("TO:<" + std::string(1000, 'a') + ">").size() == 256);
  CHECK(server::logged_mechanism("plain AGFsaWNlAHNlY3JldA==") == "PLAIN");
  CHECK(server::logged_mechanism("LOGIN") == "LOGIN");
  CHECK(server::logged_mechanism("x\r\ny") == "X");
  CHECK(server::logged_message_id("Subject: hi\r\nMessage-ID:  <abc@host>\r\n\r\nbody\r\n") ==
        "abc@host");
  CHECK(server::logged_message_id("Subject: hi\r\n\r\nMessage-ID: <not@header>\r\n") == "");
}
