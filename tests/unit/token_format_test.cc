// Unit tests for the token text formats (tokens/token_format.h), the base64
// decoding of token fields (common/base64.h) and times in words
// (tokens/time_text.h).
//
// The vectors were computed independently with Python 3:
//   hash   = base64(hashlib.sha3_256(b"bob@b.test:alice@a.test").digest()), '=' stripped
//   secret = base64(hmac.new(bytes(range(32)), signed_part, hashlib.sha256).digest()), '=' stripped
//   positional = "1-" + b64(bytes([1]*32)) + "-" + b64(bytes([2]*32)) + "-%x-%x" % (1795000000,
//   604800)
#include "tokens/token_format.h"

#include <catch2/catch.hpp>
#include <string>

#include "common/base64.h"
#include "tokens/pair_hash.h"
#include "tokens/time_text.h"

using namespace stokend;
using namespace stokend::tokens;

namespace {

const std::string pair_hash_vector = "9ukUrVN2u4vljV8L+m7A6GwfqUeE63mINJ/aHoj3Rj8";
const std::string temporary_vector =
    "1-created:1795000000-validity:604800-hash:9ukUrVN2u4vljV8L+m7A6GwfqUeE63mINJ/aHoj3Rj8"
    "-keyid:t1-secret:8/0FfW6YvqI0Sf9DsSARK5mlaeur9VbXl2rCncjDBIg";
const std::string positional_vector =
    "1-AQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQE-AgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgI"
    "-6afd86c0-93a80";

std::string parse_error(const std::string& text) {
  const TokenParseResult result = parse_named_token(text);
  REQUIRE_FALSE(result.token);
  return result.error;
}

std::string positional_error(const std::string& text) {
  const PositionalParseResult result = parse_positional_token(text);
  REQUIRE_FALSE(result.token);
  return result.error;
}

}  // namespace

TEST_CASE("a stokend token parses into its fields", "[tokens][token_format]") {
  const TokenParseResult result = parse_named_token(temporary_vector);
  INFO(result.error);
  REQUIRE(result.token);
  CHECK(result.error.empty());
  const TokenFields& fields = result.token->fields;
  CHECK(fields.created == 1795000000);
  CHECK(fields.validity == 604800);
  CHECK(fields.hash == pair_hash_vector);
  CHECK(fields.hash == base64_unpadded(pair_hash("bob@b.test", "alice@a.test")));
  REQUIRE(fields.options.size() == 1);
  CHECK(fields.options[0] == std::pair<std::string, std::string>("keyid", "t1"));
  REQUIRE(fields.option("keyid") != nullptr);
  CHECK(*fields.option("keyid") == "t1");
  CHECK(fields.option("other") == nullptr);
  CHECK(fields.secret == "8/0FfW6YvqI0Sf9DsSARK5mlaeur9VbXl2rCncjDBIg");
  CHECK(result.token->signed_length == temporary_vector.find("-secret:"));
}

TEST_CASE("emit_token writes back exactly what was parsed", "[tokens][token_format]") {
  const TokenFields fields = parse_named_token(temporary_vector).token->fields;
  CHECK(emit_token(fields) == temporary_vector);
  CHECK(emit_signed_part(fields) == temporary_vector.substr(0, temporary_vector.find("-secret:")));
}

TEST_CASE("options keep their order, fields may come in any order", "[tokens][token_format]") {
  const std::string text = "1-hash:abc-zeta:1-validity:60-alpha:x:y-created:5-beta:-secret:s";
  const TokenParseResult result = parse_named_token(text);
  INFO(result.error);
  REQUIRE(result.token);
  const TokenFields& fields = result.token->fields;
  CHECK(fields.created == 5);
  CHECK(fields.validity == 60);
  CHECK(fields.hash == "abc");
  REQUIRE(fields.options.size() == 3);
  CHECK(fields.options[0].first == "zeta");
  CHECK(fields.options[1] == std::pair<std::string, std::string>("alpha", "x:y"));
  CHECK(fields.options[2] == std::pair<std::string, std::string>("beta", ""));
  // The MAC covers the text as it came, not the canonical order.
  CHECK(result.token->signed_length == text.find("-secret:"));
  CHECK(emit_token(fields) == "1-created:5-validity:60-hash:abc-zeta:1-alpha:x:y-beta:-secret:s");
}

TEST_CASE("malformed named tokens are refused with a specific error", "[tokens][token_format]") {
  const auto [text, expected] = GENERATE(table<std::string, std::string>({
      {"", "empty token"},
      {"2-created:1-validity:1-hash:h-secret:s", "unsupported version '2' (expected '1')"},
      {"created:1-validity:1-hash:h-secret:s", "missing version"},
      {"1-validity:1-hash:h-secret:s", "missing 'created' field"},
      {"1-created:1-hash:h-secret:s", "missing 'validity' field"},
      {"1-created:1-validity:1-secret:s", "missing 'hash' field"},
      {"1-created:1-validity:1-hash:h", "missing 'secret' field"},
      {"1-created:1-validity:1-hash:h-secret:s-keyid:t1", "'secret' must be the last field"},
      {"1-created:1-validity:1-hash:h-secret:", "empty 'secret' field"},
      {"1-created:1-validity:1-hash:-secret:s", "empty 'hash' field"},
      {"1-created:1-created:2-validity:1-hash:h-secret:s", "duplicate 'created' field"},
      {"1-created:1-validity:1-validity:1-hash:h-secret:s", "duplicate 'validity' field"},
      {"1-created:1-validity:1-hash:h-hash:h-secret:s", "duplicate 'hash' field"},
      {"1-created:1-validity:1-keyid:a-hash:h-keyid:b-secret:s", "duplicate 'keyid' field"},
      {"1-created:1--validity:1-hash:h-secret:s", "empty field 3"},
      {"1-created:1-validity-hash:h-secret:s", "field 3 'validity' has no ':'"},
      {"1-created:1-:x-validity:1-hash:h-secret:s", "field 3 ':x' has no name"},
      {"1-created:01-validity:1-hash:h-secret:s",
       "invalid 'created' value '01' (expected seconds in decimal, 1-253402300799, no leading "
       "zero)"},
      {"1-created:0-validity:1-hash:h-secret:s",
       "invalid 'created' value '0' (expected seconds in decimal, 1-253402300799, no leading "
       "zero)"},
      {"1-created:1-validity:+5-hash:h-secret:s",
       "invalid 'validity' value '+5' (expected seconds in decimal, 1-253402300799, no leading "
       "zero)"},
      {"1-created:253402300800-validity:1-hash:h-secret:s",
       "invalid 'created' value '253402300800' (expected seconds in decimal, 1-253402300799, no "
       "leading zero)"},
      {"1-created:1-validity:1-hash:h-secret:s=",
       "octet '=' at position 39 is not allowed in a token"},
      {"1-created:1 -validity:1-hash:h-secret:s",
       "octet 0x20 at position 12 is not allowed in a token"},
      {"1-created:1-validity:1-hash:\xc3\xa9-secret:s",
       "octet 0xc3 at position 29 is not allowed in a token"},
      {"1-created:1-validity:1-hash:h-secret:s\r\n",
       "octet 0x0d at position 39 is not allowed in a token"},
  }));
  INFO(text);
  CHECK(parse_error(text) == expected);
}

TEST_CASE("a token may be 512 octets long, not 513", "[tokens][token_format]") {
  const std::string head = "1-created:1-validity:1-hash:h-pad:";
  const std::string tail = "-secret:s";
  const std::string longest =
      head + std::string(max_token_length - head.size() - tail.size(), 'x') + tail;
  REQUIRE(longest.size() == 512);
  CHECK(parse_named_token(longest).token);
  const std::string too_long =
      head + std::string(max_token_length + 1 - head.size() - tail.size(), 'x') + tail;
  CHECK(parse_error(too_long) == "token is 513 octets long, more than 512");
  CHECK(positional_error(too_long) == "token is 513 octets long, more than 512");
}

TEST_CASE("every octet outside the ESMTP value range is refused", "[tokens][token_format]") {
  for (int octet = 0; octet < 256; ++octet) {
    const bool allowed = (octet >= 33 && octet <= 60) || (octet >= 62 && octet <= 126);
    // Long enough for the eight-at-a-time check, placed at each offset in a word.
    for (std::size_t offset = 0; offset < 8; ++offset) {
      std::string text = "1-created:1-validity:1-hash:h-opt:" + std::string(16, 'a') + "-secret:s";
      const std::size_t position = text.find("-opt:") + 5 + offset;
      text[position] = static_cast<char>(octet);
      const TokenParseResult result = parse_named_token(text);
      INFO("octet " << octet << " at " << position);
      if (octet == '-' || octet == ':') continue;  // separators: the token still parses or not
      CHECK(result.token.has_value() == allowed);
      if (!allowed) CHECK_THAT(result.error, Catch::Contains("is not allowed in a token"));
    }
  }
}

TEST_CASE("a positional token parses into its fields", "[tokens][token_format]") {
  const PositionalParseResult result = parse_positional_token(positional_vector);
  INFO(result.error);
  REQUIRE(result.token);
  std::array<std::uint8_t, 32> ones{};
  ones.fill(1);
  std::array<std::uint8_t, 32> twos{};
  twos.fill(2);
  CHECK(result.token->first == ones);
  CHECK(result.token->second == twos);
  CHECK(result.token->created == 1795000000);
  CHECK(result.token->validity == 604800);
  // Hex digits in either case.
  std::string upper = positional_vector;
  upper.replace(upper.find("6afd86c0"), 8, "6AFD86C0");
  REQUIRE(parse_positional_token(upper).token);
  CHECK(parse_positional_token(upper).token->created == 1795000000);
}

TEST_CASE("malformed positional tokens are refused with a specific error",
          "[tokens][token_format]") {
  const std::string first = "AQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQE";
  const std::string second = "AgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgI";
  const auto [text, expected] = GENERATE_COPY(table<std::string, std::string>({
      {"1-" + first + "-" + second + "-6afd86c0", "expected 5 fields separated by '-', got 4"},
      {"2-" + first + "-" + second + "-6afd86c0-93a80", "unsupported version '2' (expected '1')"},
      // 'F' instead of 'E' leaves a non-zero bit after the 32 octets.
      {"1-AQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQF-" + second + "-6afd86c0-93a80",
       "field 2 'AQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEB...' is not 32 octets in base64 without "
       "padding"},
      {"1-" + first + "-AgIC-6afd86c0-93a80",
       "field 3 'AgIC' is not 32 octets in base64 without padding"},
      {"1-" + first + "-" + second + "-6afd86cg-93a80",
       "field 4 '6afd86cg' is not seconds in hexadecimal (1-253402300799)"},
      {"1-" + first + "-" + second + "-6afd86c0-0",
       "field 5 '0' is not seconds in hexadecimal (1-253402300799)"},
      {"1-" + first + "-" + second + "-6afd86c0-",
       "field 5 '' is not seconds in hexadecimal (1-253402300799)"},
      {"1-" + first + "=-" + second + "-6afd86c0-93a80",
       "octet '=' at position 46 is not allowed in a token"},
  }));
  INFO(text);
  CHECK(positional_error(text) == expected);
}

TEST_CASE("token_lifetime reads either format", "[tokens][token_format]") {
  const auto named = token_lifetime(temporary_vector);
  REQUIRE(named);
  CHECK(named->created == 1795000000);
  CHECK(named->validity == 604800);
  CHECK(named->hash == pair_hash_vector);

  const auto positional = token_lifetime(positional_vector);
  REQUIRE(positional);
  CHECK(positional->created == 1795000000);
  CHECK(positional->validity == 604800);
  CHECK_FALSE(positional->hash);

  CHECK_FALSE(token_lifetime("1-two-fields"));
  CHECK_FALSE(token_lifetime(""));
}

TEST_CASE("base64 fields decode to exactly 32 octets, canonically", "[tokens][token_format]") {
  std::array<std::uint8_t, 32> counting{};
  for (std::size_t i = 0; i < counting.size(); ++i) counting[i] = static_cast<std::uint8_t>(i);
  const auto decoded = decode_base64_32("AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8");
  REQUIRE(decoded);
  CHECK(*decoded == counting);
  CHECK(decode_base64_32("AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=", Base64Padding::required) ==
        decoded);
  CHECK_FALSE(decode_base64_32("AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8="));
  CHECK_FALSE(
      decode_base64_32("AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8", Base64Padding::required));
  CHECK_FALSE(decode_base64_32("AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh"));    // 42
  CHECK_FALSE(decode_base64_32("AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8A"));  // 44
  CHECK_FALSE(decode_base64_32("AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh9"));   // bits left
  CHECK_FALSE(decode_base64_32("AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdH-8"));   // alphabet
  CHECK_FALSE(decode_base64_32("AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdH_8"));   // URL-safe

  // Every digest encodes and decodes back, whatever its octets.
  for (int seed = 0; seed < 256; ++seed) {
    Sha3Digest digest{};
    for (std::size_t i = 0; i < digest.size(); ++i) {
      digest[i] = static_cast<std::uint8_t>(seed * 31 + static_cast<int>(i) * 17);
    }
    CHECK(decode_base64_32(base64_unpadded(digest)) == digest);
  }
}

TEST_CASE("times read as ISO 8601 UTC, durations in words", "[tokens][token_format]") {
  CHECK(iso8601_utc(0) == "1970-01-01T00:00:00Z");
  CHECK(iso8601_utc(1795000000) == "2026-11-18T11:06:40Z");  // date -u -d @1795000000
  CHECK(iso8601_utc(253402300799) == "9999-12-31T23:59:59Z");
  CHECK(duration_in_words(0) == "0 seconds");
  CHECK(duration_in_words(1) == "1 second");
  CHECK(duration_in_words(59) == "59 seconds");
  CHECK(duration_in_words(60) == "1 minute");
  CHECK(duration_in_words(3599) == "59 minutes");
  CHECK(duration_in_words(7200) == "2 hours");
  CHECK(duration_in_words(86400) == "1 day");
  CHECK(duration_in_words(3 * 86400 + 5) == "3 days");
  CHECK(duration_in_words(-90000) == "1 day");
}
