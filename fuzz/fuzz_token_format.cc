// libFuzzer target for the token formats (tokens/token_format.h).
//
// Runs parse_named_token, the in-place scan verification uses
// (tokens/token_scan.h), parse_positional_token and token_lifetime on the
// input. Beyond memory safety (the sanitizers), checks (abort on
// violation): a failure always carries a short error and a success none; a
// parsed named token's fields are within their bounds, its signed part ends
// right before "-secret:" and the secret is the rest; emit_token() writes
// text that parses back to the same fields and writes itself again, and
// gives back the input exactly when the input was canonical (created,
// validity and hash first, in that order); the scan agrees with the parser;
// no text is both a named and a positional token; token_lifetime agrees
// with the two parsers.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>
#include <vector>

#include "tokens/token_format.h"
#include "tokens/token_scan.h"

namespace {

using namespace stokend;
using namespace stokend::tokens;

constexpr std::int64_t max_token_time = 253402300799;

void require(bool condition) {
  if (!condition) std::abort();
}

bool same_fields(const TokenFields& left, const TokenFields& right) {
  return left.created == right.created && left.validity == right.validity &&
         left.hash == right.hash && left.options == right.options && left.secret == right.secret;
}

// Whether the first three fields after the version are created, validity and
// hash, in that order: the order emit_token() writes.
bool canonical_order(std::string_view text) {
  std::vector<std::string_view> keys;
  std::size_t start = 0;
  for (int field = 0; field < 4; ++field) {
    const std::size_t dash = text.find('-', start);
    if (dash == std::string_view::npos) return false;
    start = dash + 1;
    const std::string_view rest = text.substr(start);
    keys.push_back(rest.substr(0, rest.find(':')));
  }
  return keys[0] == "created" && keys[1] == "validity" && keys[2] == "hash";
}

void check_named(std::string_view input) {
  const TokenParseResult result = parse_named_token(input);
  NamedTokenScan scan;
  const std::string scan_error = scan_named_token(input, scan);
  require(scan_error == result.error);
  if (!result.token) {
    require(!result.error.empty() && result.error.size() < 300);
    return;
  }
  require(result.error.empty());
  const ParsedToken& parsed = *result.token;
  const TokenFields& fields = parsed.fields;
  require(fields.created > 0 && fields.created <= max_token_time);
  require(fields.validity > 0 && fields.validity <= max_token_time);
  require(!fields.hash.empty() && !fields.secret.empty());
  require(parsed.signed_length < input.size());
  require(input.substr(parsed.signed_length) == "-secret:" + fields.secret);

  require(scan.created == fields.created && scan.validity == fields.validity);
  require(scan.hash == fields.hash && scan.secret == fields.secret);
  require(scan.signed_length == parsed.signed_length);
  const std::string* key_id = fields.option("keyid");
  require(scan.key_id.has_value() == (key_id != nullptr));
  if (key_id != nullptr) require(*scan.key_id == *key_id);

  const std::string emitted = emit_token(fields);
  const TokenParseResult again = parse_named_token(emitted);
  require(again.token.has_value());
  require(same_fields(again.token->fields, fields));
  require(emit_token(again.token->fields) == emitted);
  require(emit_signed_part(fields) == emitted.substr(0, again.token->signed_length));
  if (canonical_order(input)) require(emitted == input);
}

void check_positional(std::string_view input) {
  const PositionalParseResult result = parse_positional_token(input);
  if (!result.token) {
    require(!result.error.empty() && result.error.size() < 300);
    return;
  }
  require(result.error.empty());
  require(result.token->created > 0 && result.token->created <= max_token_time);
  require(result.token->validity > 0 && result.token->validity <= max_token_time);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view input(reinterpret_cast<const char*>(data), size);
  check_named(input);
  check_positional(input);

  const TokenParseResult named = parse_named_token(input);
  const PositionalParseResult positional = parse_positional_token(input);
  require(!(named.token && positional.token));
  const auto lifetime = token_lifetime(input);
  require(lifetime.has_value() == (named.token || positional.token));
  if (named.token) {
    require(lifetime->created == named.token->fields.created);
    require(lifetime->validity == named.token->fields.validity);
    require(lifetime->hash == named.token->fields.hash);
  } else if (positional.token) {
    require(lifetime->created == positional.token->created);
    require(lifetime->validity == positional.token->validity);
    require(!lifetime->hash);
  }
  return 0;
}
