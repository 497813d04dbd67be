// Unit tests for the text helpers of stokenctl's stoken commands
// (admin/stoken_session.h): --server HOST:PORT, the shortening of tokens in
// transcript lines, and the CRLF form of a message body.
#include <catch2/catch.hpp>
#include <string>

#include "admin/stoken_session.h"

using stokend::admin::as_crlf_message;
using stokend::admin::parse_host_port;
using stokend::admin::shorten_token;
using stokend::admin::shorten_tokens_in;

namespace {

const std::string token =
    "1-created:1795007200-validity:31536000-hash:TdHUhOQ7ODVMjIHvrButNUNYwPWiGb8maGg8jKuFw4k"
    "-keyid:p1-secret:ZrGFOUNNlaALAvTlWhWNutivpS97UjMCpsMm9/3FgS4";

}  // namespace

TEST_CASE("--server takes a host name, an IPv4 literal or a bracketed IPv6 literal with a port",
          "[stoken]") {
  auto named = parse_host_port("tokens.b.test:465");
  REQUIRE(named);
  CHECK(named->host == "tokens.b.test");
  CHECK(named->port == 465);
  auto v6 = parse_host_port("[::1]:10465");
  REQUIRE(v6);
  CHECK(v6->host == "::1");
  CHECK(v6->port == 10465);
  for (const char* bad :
       {"tokens.b.test", "tokens.b.test:", ":465", "host:0", "host:65536", "host:46x", "::1:465",
        "[::1]465", "[127.0.0.1]:465", "[[3]:1", "a b:25", "user@host:25"}) {
    INFO(bad);
    CHECK_FALSE(parse_host_port(bad));
  }
}

TEST_CASE("tokens in a transcript line are shortened to one word each", "[stoken]") {
  CHECK(shorten_token("short") == "short");
  CHECK(shorten_token(token) == "1-created:17...(+" + std::to_string(token.size() - 12) + ")");
  const std::string rcpt = "RCPT TO:<bob@b.test> STOKEN=" + token + " MYSTOKEN=" + token;
  const std::string shown = shorten_tokens_in(rcpt);
  CHECK(shown.find(token) == std::string::npos);
  CHECK(shown == "RCPT TO:<bob@b.test> STOKEN=" + shorten_token(token) +
                     " MYSTOKEN=" + shorten_token(token));
  // The AUTH STOKEN response; a permanent token in a 2.1.13 reply; an
  // address and a delivery id stay whole.
  CHECK(shorten_tokens_in("AUTH STOKEN Ym9iQGIudGVzdAAxLXRva2VuLWZvci1ib2I=") ==
        "AUTH STOKEN Ym9iQGIudGVz...(+24)");
  const std::string reply = "250 2.1.13 <a-rather-long-address@example.test> " + token +
                            " 1796664000.M806298P32282Q1.mx.b.test Delivered";
  CHECK(shorten_tokens_in(reply) == "250 2.1.13 <a-rather-long-address@example.test> " +
                                        shorten_token(token) +
                                        " 1796664000.M806298P32282Q1.mx.b.test Delivered");
  CHECK(shorten_tokens_in("MAIL FROM:<alice@a.test> SIZE=22 SYNC") ==
        "MAIL FROM:<alice@a.test> SIZE=22 SYNC");
}

TEST_CASE("a message body gets CRLF line endings and a final CRLF", "[stoken]") {
  CHECK(as_crlf_message("Subject: hi\n\nhello") == "Subject: hi\r\n\r\nhello\r\n");
  CHECK(as_crlf_message("a\r\nb\n") == "a\r\nb\r\n");
  CHECK(as_crlf_message("") == "\r\n");
}
