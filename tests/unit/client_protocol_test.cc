// Unit tests for the outbound client's protocol pieces that need no peer:
// reply parsing, EHLO capabilities, DATA encoding, destination keys, and
// the LMTP delivery id.
#include <catch2/catch.hpp>
#include <string>

#include "common/destination.h"
#include "mta/client/capabilities.h"
#include "mta/client/dot_stuffer.h"
#include "mta/client/reply.h"
#include "mta/store/lmtp_store.h"

using namespace stokend;
using namespace stokend::client;

namespace {

Reply parse_one(std::initializer_list<std::string_view> lines) {
  ReplyParser parser(100);
  ReplyParser::Status status = ReplyParser::Status::need_more;
  for (auto line : lines) {
    REQUIRE(status == ReplyParser::Status::need_more);
    status = parser.add_line(line);
  }
  REQUIRE(status == ReplyParser::Status::complete);
  return parser.take();
}

}  // namespace

TEST_CASE("a single-line reply with an enhanced status code", "[client]") {
  Reply reply = parse_one({"250 2.1.5 Ok"});
  CHECK(reply.code == 250);
  CHECK(reply.enhanced_code == "2.1.5");
  CHECK(reply.text() == "Ok");
  CHECK(reply.is_positive());
  CHECK(reply.to_string() == "250 2.1.5 Ok");
}

TEST_CASE("enhanced codes are taken only when their class matches the reply", "[client]") {
  CHECK(parse_one({"550 2.1.5 odd"}).enhanced_code.empty());
  CHECK(parse_one({"550 2.1.5 odd"}).text() == "2.1.5 odd");
  CHECK(parse_one({"451 4.3.0"}).enhanced_code == "4.3.0");
  CHECK(parse_one({"451 4.3.0"}).text().empty());
  CHECK(parse_one({"250 2.0.0x not a code"}).enhanced_code.empty());
  CHECK(parse_one({"250 2.1000.0 too many digits"}).enhanced_code.empty());
}

TEST_CASE("a multi-line reply keeps each line and strips the code from each", "[client]") {
  Reply reply = parse_one({"550-5.7.1 first", "550-5.7.1 second", "550 5.7.1 third"});
  CHECK(reply.code == 550);
  CHECK(reply.enhanced_code == "5.7.1");
  REQUIRE(reply.lines.size() == 3);
  CHECK(reply.lines[1] == "second");
  CHECK(reply.text() == "first second third");
  CHECK(reply.is_permanent_failure());
}

TEST_CASE("a bare code and an empty text are valid last lines", "[client]") {
  CHECK(parse_one({"250"}).code == 250);
  CHECK(parse_one({"250-smtp-sink", "250 "}).lines.size() == 2);
}

TEST_CASE("malformed reply lines are refused", "[client]") {
  for (std::string_view line :
       {"", "25", "2500 x", "abc def", "650 bad class", "260 bad second", "250x", "199 low"}) {
    ReplyParser parser(100);
    INFO(line);
    CHECK(parser.add_line(line) == ReplyParser::Status::malformed);
    CHECK_FALSE(parser.error().empty());
  }
  ReplyParser changing(100);
  CHECK(changing.add_line("250-first") == ReplyParser::Status::need_more);
  CHECK(changing.add_line("251 second") == ReplyParser::Status::malformed);
  ReplyParser too_many(2);
  CHECK(too_many.add_line("250-a") == ReplyParser::Status::need_more);
  CHECK(too_many.add_line("250-b") == ReplyParser::Status::need_more);
  CHECK(too_many.add_line("250 c") == ReplyParser::Status::malformed);
}

TEST_CASE("the parser is ready for the next reply after take()", "[client]") {
  ReplyParser parser(100);
  CHECK(parser.add_line("250 first") == ReplyParser::Status::complete);
  CHECK(parser.take().text() == "first");
  CHECK(parser.add_line("354 go ahead") == ReplyParser::Status::complete);
  Reply second = parser.take();
  CHECK(second.code == 354);
  CHECK(second.lines.size() == 1);
}

TEST_CASE("EHLO capabilities, known and unknown", "[client]") {
  Reply reply = parse_one({"250-mx.example Hello", "250-PIPELINING", "250-SIZE 10240000",
                           "250-8bitmime", "250-SMTPUTF8", "250-STARTTLS", "250-CHUNKING",
                           "250-ENHANCEDSTATUSCODES", "250-AUTH PLAIN LOGIN", "250 STOKEN"});
  Capabilities capabilities = Capabilities::from_hello_reply(reply);
  CHECK(capabilities.pipelining);
  CHECK(capabilities.size_announced);
  CHECK(capabilities.size_limit == 10240000);
  CHECK(capabilities.eight_bit_mime);
  CHECK(capabilities.smtputf8);
  CHECK(capabilities.starttls);
  CHECK(capabilities.chunking);
  CHECK(capabilities.enhanced_status_codes);
  CHECK(capabilities.has("stoken"));
  CHECK(capabilities.parameters("AUTH") == "PLAIN LOGIN");
  CHECK_FALSE(capabilities.has("DSN"));
  CHECK_FALSE(capabilities.parameters("DSN").has_value());
  CHECK_FALSE(capabilities.has("mx.example"));  // the first line is the server's name
}

TEST_CASE("SIZE without a number means no fixed limit", "[client]") {
  auto capabilities = Capabilities::from_hello_reply(parse_one({"250-x", "250 SIZE"}));
  CHECK(capabilities.size_announced);
  CHECK(capabilities.size_limit == 0);
  auto nothing = Capabilities::from_hello_reply(parse_one({"250 x"}));
  CHECK_FALSE(nothing.size_announced);
  CHECK(nothing.keywords.empty());
}

TEST_CASE("DATA encoding doubles leading dots and ends with CRLF.CRLF", "[client]") {
  CHECK(dot_stuff("a\r\nb\r\n") == "a\r\nb\r\n.\r\n");
  CHECK(dot_stuff(".a\r\n..b\r\n.\r\nc.\r\n") == "..a\r\n...b\r\n..\r\nc.\r\n.\r\n");
  CHECK(dot_stuff("no final line ending") == "no final line ending\r\n.\r\n");
  CHECK(dot_stuff("") == ".\r\n");
  // A dot after a bare LF is doubled too: no lenient receiver sees an end.
  CHECK(dot_stuff("a\n.\r\n") == "a\n..\r\n.\r\n");
}

TEST_CASE("DATA encoding in small pieces gives the same octets", "[client]") {
  std::string message;
  for (int i = 0; i < 200; ++i) message += (i % 3 == 0 ? "." : "") + std::to_string(i) + "\r\n";
  std::string whole = dot_stuff(message);
  for (std::size_t budget : {1u, 2u, 3u, 7u, 64u, 4096u}) {
    DotStuffer stuffer(message);
    std::string pieces;
    std::size_t rounds = 0;
    while (!stuffer.finished()) {
      std::string piece;
      stuffer.append_next(piece, budget);
      CHECK(piece.size() <= budget + 8);  // a doubled dot and the end marker
      pieces += piece;
      REQUIRE(++rounds < 100000);
    }
    INFO(budget);
    CHECK(pieces == whole);
  }
}

TEST_CASE("destination keys name protocol, address and TLS rules", "[client]") {
  CHECK(Destination::tcp(Protocol::smtp, "127.0.0.1", 2525).key() == "smtp:[127.0.0.1]:2525");
  CHECK(Destination::tcp(Protocol::smtp, "::1", 25).key() == "smtp:[::1]:25");
  CHECK(Destination::unix_socket(Protocol::lmtp, "/run/dovecot/lmtp").key() ==
        "lmtp:unix:/run/dovecot/lmtp");
  auto verified = Destination::tcp(Protocol::smtp, "192.0.2.1", 25);
  verified.tls_policy = TlsPolicy::required;
  verified.verify_certificate = true;
  verified.tls_server_name = "mx.b.test";
  CHECK(verified.key() == "smtp:[192.0.2.1]:25;tls=required;verify=mx.b.test");
  auto plain = Destination::unix_socket(Protocol::lmtp, "/s");
  plain.tls_policy = TlsPolicy::never;
  CHECK(plain.key() == "lmtp:unix:/s;tls=never");
}

TEST_CASE("the delivery id in Dovecot's LMTP reply", "[client]") {
  using stokend::store::lmtp_delivery_id;
  CHECK(lmtp_delivery_id("<alice@x.test> W4zSGt/fAmsqewAAg+zDdQ Saved") ==
        "W4zSGt/fAmsqewAAg+zDdQ");
  CHECK(lmtp_delivery_id("<bob@x.test> W4zSGt/fAmsqewAAg+zDdQ:R3 Saved") ==
        "W4zSGt/fAmsqewAAg+zDdQ:R3");
  CHECK(lmtp_delivery_id("Ok").empty());
  CHECK(lmtp_delivery_id("").empty());
}
