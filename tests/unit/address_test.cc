// Unit tests for RFC 5321 path and mailbox parsing, SMTPUTF8 addresses,
// the RFC 5321 length limits and relay-trick detection.
#include "message/address.h"

#include <catch2/catch.hpp>
#include <string>

#include "common/ascii.h"

using stokend::ascii_lowercase;
using stokend::message::Mailbox;
using stokend::message::parse_mailbox;
using stokend::message::parse_path;
using stokend::message::Path;
using stokend::message::relay_trick;

namespace {

// Parses a complete path and returns it; fails the test when it does not parse.
Path accepted(std::string_view input, bool allow_null = false, bool utf8 = false) {
  const auto result = parse_path(input, allow_null, utf8);
  INFO("input " << input << " error " << result.error);
  REQUIRE(result.path.has_value());
  CHECK(result.error.empty());
  CHECK(result.consumed == input.size());
  return *result.path;
}

// Returns the error for an input that must not parse.
std::string refused(std::string_view input, bool allow_null = false, bool utf8 = false) {
  const auto result = parse_path(input, allow_null, utf8);
  INFO("input " << input);
  CHECK_FALSE(result.path.has_value());
  CHECK_FALSE(result.error.empty());
  return result.error;
}

}  // namespace

TEST_CASE("A plain path parses into local part and domain") {
  const Path path = accepted("<John.Smith+tag@Example.COM>");
  CHECK_FALSE(path.is_null);
  CHECK(path.source_route.empty());
  CHECK(path.mailbox.local_part == "John.Smith+tag");
  CHECK(path.mailbox.domain == "Example.COM");
  CHECK_FALSE(path.mailbox.local_part_quoted);
  CHECK_FALSE(path.mailbox.domain_is_literal);
  CHECK(path.mailbox.to_string() == "John.Smith+tag@Example.COM");
  CHECK(path.mailbox.normalized() == "john.smith+tag@example.com");
}

TEST_CASE("Every atext character is allowed in a Dot-string") {
  const Path path = accepted("<!#$%&'*+-/=?^_`{|}~09az.AZ@example.com>");
  CHECK(path.mailbox.local_part == "!#$%&'*+-/=?^_`{|}~09az.AZ");
}

TEST_CASE("The path leaves what follows it to the caller") {
  const auto result = parse_path("<a@example.com> SIZE=10", false, false);
  REQUIRE(result.path);
  CHECK(result.consumed == 15);
}

TEST_CASE("The null path is accepted only where allowed") {
  CHECK(accepted("<>", true).is_null);
  CHECK(parse_path("<> BODY=8BITMIME", true, false).consumed == 2);
  CHECK(refused("<>", false) == "null address <> not allowed here");
}

TEST_CASE("Quoted local parts are decoded and re-quoted when needed") {
  const Path spaced = accepted(R"(<"John Smith"@example.com>)");
  CHECK(spaced.mailbox.local_part == "John Smith");
  CHECK(spaced.mailbox.local_part_quoted);
  CHECK(spaced.mailbox.to_string() == R"("John Smith"@example.com)");

  const Path escaped = accepted(R"(<"a\"b\\c\d"@example.com>)");
  CHECK(escaped.mailbox.local_part == R"(a"b\cd)");
  CHECK(escaped.mailbox.to_string() == R"("a\"b\\cd"@example.com)");

  // Quoting that is not needed is dropped on output (RFC 5321 §4.1.2).
  const Path needless = accepted(R"(<"john"@example.com>)");
  CHECK(needless.mailbox.local_part == "john");
  CHECK(needless.mailbox.to_string() == "john@example.com");

  const Path dots = accepted(R"(<".john..doe."@example.com>)");
  CHECK(dots.mailbox.to_string() == R"(".john..doe."@example.com)");

  const Path empty = accepted(R"(<""@example.com>)");
  CHECK(empty.mailbox.local_part.empty());
  CHECK(empty.mailbox.to_string() == R"(""@example.com)");
}

TEST_CASE("Malformed quoted local parts are refused") {
  CHECK(refused(R"(<"abc@example.com>)") == "unterminated quoted local part");
  CHECK(refused("<\"a\tb\"@example.com>") == "invalid character in quoted local part");
  CHECK(refused("<\"a\\\x01\"@example.com>") == "invalid escaped character in local part");
  CHECK(refused(R"(<"a"b@example.com>)") == "invalid character in local part");
}

TEST_CASE("Malformed Dot-strings are refused with a specific reason") {
  CHECK(refused("<@example.com>") == "empty local part");
  CHECK(refused("<.a@example.com>") == "leading, trailing or double dot in local part");
  CHECK(refused("<a.@example.com>") == "leading, trailing or double dot in local part");
  CHECK(refused("<a..b@example.com>") == "leading, trailing or double dot in local part");
  CHECK(refused("<a b@example.com>") == "invalid character in local part");
  CHECK(refused("<a(b)@example.com>") == "invalid character in local part");
  CHECK(refused("<abc>") == "address has no @domain");
  CHECK(refused("<abc@>") == "missing domain");
  CHECK(refused("<>x", false) == "null address <> not allowed here");
}

TEST_CASE("Paths need their angle brackets") {
  CHECK(refused("a@example.com") == "address must be enclosed in '<' and '>'");
  CHECK(refused("") == "address must be enclosed in '<' and '>'");
  CHECK(refused("<a@example.com") == "missing '>' at end of address");
  CHECK(refused("<a@example.com x>") == "invalid character in domain");
}

TEST_CASE("Domains follow the RFC 5321 sub-domain grammar") {
  CHECK(accepted("<a@1.example-host.com>").mailbox.domain == "1.example-host.com");
  CHECK(accepted("<a@localhost>").mailbox.domain == "localhost");
  CHECK(refused("<a@-example.com>") == "domain label starts or ends with '-'");
  CHECK(refused("<a@example-.com>") == "domain label starts or ends with '-'");
  CHECK(refused("<a@example..com>") == "leading, trailing or double dot in domain");
  CHECK(refused("<a@example.com.>") == "leading, trailing or double dot in domain");
  CHECK(refused("<a@.example.com>") == "invalid character in domain");
  CHECK(refused("<a@exa_mple.com>") == "invalid character in domain");
}

TEST_CASE("Address literals: IPv4 and IPv6 forms of RFC 5321 §4.1.3") {
  const Path ipv4 = accepted("<postmaster@[192.0.2.1]>");
  CHECK(ipv4.mailbox.domain == "[192.0.2.1]");
  CHECK(ipv4.mailbox.domain_is_literal);
  CHECK(ipv4.mailbox.to_string() == "postmaster@[192.0.2.1]");

  for (const char* literal :
       {"<a@[IPv6:2001:db8:0:0:0:0:0:1]>", "<a@[IPv6:2001:db8::1]>", "<a@[ipv6:::1]>",
        "<a@[IPv6:::]>", "<a@[IPv6:0:0:0:0:0:ffff:192.0.2.1]>", "<a@[IPv6:::ffff:192.0.2.1]>",
        "<a@[IPv6:1:2:3:4:5:6::]>"}) {
    CHECK(accepted(literal).mailbox.domain_is_literal);
  }
  for (const char* literal :
       {"<a@[192.0.2.256]>", "<a@[192.0.2]>", "<a@[192.0.2.1.5]>", "<a@[1.2.3.1234]>",
        "<a@[IPv6:2001:db8::1::2]>", "<a@[IPv6:1:2:3:4:5:6:7]>", "<a@[IPv6:1:2:3:4:5:6:7:8:9]>",
        "<a@[IPv6:1:2:3:4:5:6:7::]>", "<a@[IPv6:12345::1]>", "<a@[IPv6:g::1]>",
        "<a@[IPv6:1.2.3.4::1]>", "<a@[x-tag:abc]>", "<a@[]>"}) {
    CHECK(refused(literal) == "invalid address literal");
  }
  CHECK(refused("<a@[192.0.2.1>") == "unterminated address literal");
  CHECK(refused("<a@[192.0.2.1]x>") == "unexpected character after address literal");
}

TEST_CASE("UTF-8 addresses need SMTPUTF8") {
  const std::string address =
      "<j\xC3\xB6rg@b\xC3\xBC"
      "cher.example>";
  const Path path = accepted(address, false, true);
  CHECK(path.mailbox.local_part == "j\xC3\xB6rg");
  CHECK(path.mailbox.domain ==
        "b\xC3\xBC"
        "cher.example");
  CHECK(path.mailbox.to_string() ==
        "j\xC3\xB6rg@b\xC3\xBC"
        "cher.example");

  CHECK(refused(address, false, false) == "non-ASCII local part requires SMTPUTF8");
  CHECK(refused("<a@b\xC3\xBC"
                "cher.example>",
                false, false) == "non-ASCII domain requires SMTPUTF8");
  CHECK(accepted("<\"\xE2\x9C\x89 mail\"@example.com>", false, true).mailbox.local_part ==
        "\xE2\x9C\x89 mail");
  CHECK(refused("<\"\xE2\x9C\x89\"@example.com>", false, false) ==
        "non-ASCII local part requires SMTPUTF8");
}

TEST_CASE("Malformed UTF-8 is refused even with SMTPUTF8") {
  // Lone continuation, overlong encoding, surrogate, truncated sequence, > U+10FFFF.
  for (const char* address :
       {"<a\x80@example.com>", "<a\xC0\xAF@example.com>", "<a\xED\xA0\x80@example.com>",
        "<a\xE2\x9C@example.com>", "<a\xF4\x90\x80\x80@example.com>"}) {
    CHECK(refused(address, false, true) == "invalid UTF-8 in local part");
  }
  CHECK(refused("<a@ex\xFF.com>", false, true) == "invalid UTF-8 in domain");
  CHECK(accepted("<a\xF0\x9F\x98\x80@example.com>", false, true).mailbox.local_part ==
        "a\xF0\x9F\x98\x80");
}

TEST_CASE("RFC 5321 §4.5.3.1 length limits") {
  const std::string local64(64, 'l');
  CHECK(accepted("<" + local64 + "@example.com>").mailbox.local_part == local64);
  CHECK(refused("<" + local64 + "l@example.com>") == "local part longer than 64 octets");
  // The quotes count: the limit is on the local part as transmitted.
  CHECK(refused("<\"" + std::string(63, 'q') + "\"@example.com>") ==
        "local part longer than 64 octets");

  const std::string label63(63, 'd');
  CHECK(refused("<a@" + label63 + "d.com>") == "domain label longer than 63 octets");

  // 4 labels of 63 plus 3 dots = 255 octets: the largest domain.
  const std::string domain255 = label63 + "." + label63 + "." + label63 + "." + label63;
  REQUIRE(domain255.size() == 255);
  // (Too long for a path, which is limited to 256 octets, but a valid mailbox.)
  CHECK(parse_mailbox("a@" + domain255));
  CHECK_FALSE(parse_mailbox("a@x" + domain255.substr(1) + ".b"));
  CHECK(refused("<a@x" + domain255.substr(1) + ".b>") == "domain longer than 255 octets");

  // <, local part, @, domain, > : 1 + 64 + 1 + 189 + 1 = 256 is the limit.
  const std::string domain189 = label63 + "." + label63 + "." + std::string(61, 'e');
  REQUIRE(domain189.size() == 189);
  CHECK(accepted("<" + local64 + "@" + domain189 + ">").mailbox.domain == domain189);
  CHECK(refused("<" + local64 + "@" + domain189 + "e>") == "address longer than 256 octets");
}

TEST_CASE("Source routes are parsed and recorded") {
  const Path one = accepted("<@relay.example:user@example.com>");
  CHECK(one.source_route == "@relay.example");
  CHECK(one.mailbox.to_string() == "user@example.com");
  CHECK(relay_trick(one) == "source route");

  const Path two = accepted("<@a.example,@b.example:c@d.example>");
  CHECK(two.source_route == "@a.example,@b.example");
  CHECK(two.mailbox.local_part == "c");
  CHECK(two.mailbox.domain == "d.example");
  CHECK(relay_trick(two) == "source route");

  CHECK(refused("<@a.example,b.example:c@d.example>") ==
        "invalid source route: expected '@domain'");
  CHECK(refused("<@a.example c@d.example>") ==
        "invalid source route: expected ':' after the route");
  CHECK(refused("<@:c@d.example>") == "missing domain");
}

TEST_CASE("Relay tricks in the local part are reported") {
  CHECK(relay_trick(accepted("<user%remote.example@local.example>")) == "percent hack");
  CHECK(relay_trick(accepted("<remote.example!user@local.example>")) == "bang path");
  const Path quoted_at = accepted(R"(<"user@remote.example"@local.example>)");
  CHECK(quoted_at.mailbox.local_part == "user@remote.example");
  CHECK(relay_trick(quoted_at) == "@ in local part");
  CHECK(quoted_at.mailbox.to_string() == R"("user@remote.example"@local.example)");
  CHECK(relay_trick(accepted(R"(<"user%remote"@local.example>)")) == "percent hack");
  CHECK(relay_trick(accepted("<plain.user@local.example>")).empty());
  CHECK(relay_trick(accepted("<>", true)).empty());
}

TEST_CASE("An unquoted second @ is a parse error") {
  CHECK(refused("<user@remote.example@local.example>") == "unquoted '@' in local part");
  CHECK_FALSE(parse_mailbox("user@remote.example@local.example"));
}

TEST_CASE("Bare mailboxes parse without angle brackets") {
  const auto mailbox = parse_mailbox("Alice@Example.org");
  REQUIRE(mailbox);
  CHECK(mailbox->local_part == "Alice");
  CHECK(mailbox->domain == "Example.org");
  CHECK(mailbox->normalized() == "alice@example.org");
  CHECK(parse_mailbox("\"a b\"@example.org")->local_part == "a b");
  CHECK(parse_mailbox("b\xC3\xBC@example.org", true));
  CHECK_FALSE(parse_mailbox("b\xC3\xBC@example.org", false));
  CHECK_FALSE(parse_mailbox("<a@example.org>"));
  CHECK_FALSE(parse_mailbox("a@example.org "));
  CHECK_FALSE(parse_mailbox("a"));
  CHECK_FALSE(parse_mailbox(""));
  CHECK_FALSE(parse_mailbox(std::string(65, 'a') + "@example.org"));
}

TEST_CASE("A mailbox without a domain prints as its local part") {
  Mailbox postmaster;
  postmaster.local_part = "Postmaster";
  CHECK(postmaster.to_string() == "Postmaster");
}

TEST_CASE("ascii_lowercase leaves UTF-8 bytes alone") {
  CHECK(ascii_lowercase("AbC\xC3\x84Z") == "abc\xC3\x84z");
}
