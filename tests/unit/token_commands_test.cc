// Unit tests for the Token Server's command parsing: the AUTH STOKEN
// response (both separator spellings) and GENSTOKEN / REVSTOKEN arguments
// with the exact replies of their errors.
#include "mta/server/token_commands.h"

#include <catch2/catch.hpp>
#include <string>

#include "common/base64.h"
#include "mta/server/sasl.h"

using stokend::encode_base64;
using stokend::server::decode_stoken_response;
using stokend::server::parse_genstoken_arguments;
using stokend::server::parse_revstoken_arguments;
using stokend::server::TokenCommandParseResult;
using stokend::tokens::TokenKind;

namespace {

void check_error(const TokenCommandParseResult& result, int code, const std::string& enhanced) {
  CHECK_FALSE(result.arguments.has_value());
  CHECK(result.error.code == code);
  CHECK(result.error.enhanced == enhanced);
}

}  // namespace

TEST_CASE("AUTH STOKEN response with a NUL separator", "[token_commands]") {
  std::string message =
      std::string("alice@example.test") + '\0' + "1-created:5-validity:9-hash:x-secret:y";
  auto credentials = decode_stoken_response(encode_base64(message));
  REQUIRE(credentials);
  CHECK(credentials->recipient == "alice@example.test");
  CHECK(credentials->token == "1-created:5-validity:9-hash:x-secret:y");
}

TEST_CASE("AUTH STOKEN response with draft -00's literal backslash-zero", "[token_commands]") {
  // draft-slusarz-extra-smtp-submission-token-00 §7.3.1.1 encodes
  // "user@foo.com\0s6xW15h9Dh" with the two characters '\' and '0'.
  auto credentials = decode_stoken_response("dXNlckBmb28uY29tXDBzNnhXMTVoOURo");
  REQUIRE(credentials);
  CHECK(credentials->recipient == "user@foo.com");
  CHECK(credentials->token == "s6xW15h9Dh");
}

TEST_CASE("AUTH STOKEN responses that are refused", "[token_commands]") {
  CHECK_FALSE(decode_stoken_response("not base64!"));
  CHECK_FALSE(decode_stoken_response(encode_base64("no separator at all")));
  CHECK_FALSE(decode_stoken_response(encode_base64(std::string("\0token", 6))));    // no recipient
  CHECK_FALSE(decode_stoken_response(encode_base64(std::string("alice@x\0", 8))));  // no token
  CHECK_FALSE(decode_stoken_response(encode_base64(std::string("a@x\0t\0u", 7))));  // two NULs
  CHECK_FALSE(decode_stoken_response(""));
}

TEST_CASE("GENSTOKEN arguments", "[token_commands]") {
  SECTION("kind, remote and local, in any case, with or without brackets") {
    auto result = parse_genstoken_arguments("temp <Bob@Remote.Example> alice@example.test");
    REQUIRE(result.arguments);
    CHECK(result.arguments->kind == TokenKind::temporary);
    CHECK(result.arguments->remote.normalized() == "bob@remote.example");
    REQUIRE(result.arguments->local);
    CHECK(result.arguments->local->normalized() == "alice@example.test");
  }
  SECTION("local address is optional") {
    auto result = parse_genstoken_arguments("PERM bob@remote.example");
    REQUIRE(result.arguments);
    CHECK(result.arguments->kind == TokenKind::permanent);
    CHECK_FALSE(result.arguments->local);
  }
  SECTION("syntax errors: 501 5.5.4") {
    check_error(parse_genstoken_arguments(""), 501, "5.5.4");
    check_error(parse_genstoken_arguments("bob@remote.example"), 501, "5.5.4");
    check_error(parse_genstoken_arguments("FOREVER bob@remote.example"), 501, "5.5.4");
    check_error(parse_genstoken_arguments("TEMP"), 501, "5.5.4");
    check_error(parse_genstoken_arguments("TEMP a@b.example c@d.example e@f.example"), 501,
                "5.5.4");
  }
  SECTION("bad remote address: 501 5.1.3 (the draft's example)") {
    check_error(parse_genstoken_arguments("TEMP remoteuser..@example.com"), 501, "5.1.3");
    check_error(parse_genstoken_arguments("TEMP nodomain"), 501, "5.1.3");
    check_error(parse_genstoken_arguments("TEMP user@[192.0.2.1]"), 501, "5.1.3");
    check_error(parse_genstoken_arguments("TEMP <@relay.example:user@example.com>"), 501, "5.1.3");
  }
  SECTION("bad local address: 501 5.1.7") {
    check_error(parse_genstoken_arguments("TEMP bob@remote.example alice..@example.test"), 501,
                "5.1.7");
  }
}

TEST_CASE("REVSTOKEN arguments", "[token_commands]") {
  auto result = parse_revstoken_arguments("bob@remote.example  alice@example.test");
  REQUIRE(result.arguments);
  CHECK(result.arguments->remote.normalized() == "bob@remote.example");
  REQUIRE(result.arguments->local);
  check_error(parse_revstoken_arguments(""), 501, "5.5.4");
  check_error(parse_revstoken_arguments("TEMP bob@remote.example"), 501, "5.1.3");
  check_error(parse_revstoken_arguments("bob@remote.example x@"), 501, "5.1.7");
}
