// libFuzzer target for the parsers of Dovecot's auth protocols
// (mta/auth/dovecot_protocol.h) and of the auth: socket settings
// (mta/auth/dovecot_endpoint.h). The first input octet picks the parser,
// the rest is one line (or setting).
//
// Beyond memory safety (the sanitizers), checks (abort on violation): a
// result is either a line or an error, never both or neither; an OK names a
// printable login; a CONT challenge is base64 text (so it can go out as a 334
// line as it is); escape_field() of any field splits back to that one field;
// an endpoint that parses describes itself as text that parses to it again.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>

#include "mta/auth/dovecot_endpoint.h"
#include "mta/auth/dovecot_protocol.h"

namespace {

using namespace stokend::auth;

void check_auth_line(std::string_view text) {
  const AuthServerParse parsed = parse_auth_server_line(text);
  if (parsed.line.has_value() == !parsed.error.empty()) std::abort();
  if (!parsed.line) return;
  const AuthServerLine& line = *parsed.line;
  if (line.kind == AuthServerLine::Kind::ok) {
    if (line.user.empty() || line.id == 0) std::abort();
    for (unsigned char c : line.user) {
      if (c <= 0x20 || c == 0x7f) std::abort();
    }
  }
  if (line.kind == AuthServerLine::Kind::cont) {
    if (line.challenge.size() % 4 != 0) std::abort();
    for (char c : line.challenge) {
      if (c == '\r' || c == '\n' || c == ' ' || c == '\t' || c == '\0') std::abort();
    }
  }
}

void check_userdb_line(std::string_view text) {
  const UserdbParse parsed = parse_userdb_line(text);
  if (parsed.line.has_value() == !parsed.error.empty()) std::abort();
  if (parsed.line && parsed.line->kind == UserdbLine::Kind::user && parsed.line->user.empty()) {
    std::abort();
  }
}

void check_escape(std::string_view text) {
  const std::string escaped = escape_field(text);
  if (escaped.find('\t') != std::string::npos || escaped.find('\n') != std::string::npos) {
    std::abort();
  }
  const auto fields = split_fields(escaped);
  if (fields.size() != 1 || fields[0] != text) std::abort();
}

void check_endpoint(std::string_view text) {
  std::string error;
  const auto endpoint = parse_dovecot_endpoint(text, error);
  if (!endpoint) {
    if (error.empty()) std::abort();
    return;
  }
  std::string again_error;
  const auto again = parse_dovecot_endpoint(endpoint->describe(), again_error);
  if (!again || !(*again == *endpoint)) std::abort();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size == 0) return 0;
  const std::string_view text(reinterpret_cast<const char*>(data) + 1, size - 1);
  switch (data[0] % 4) {
    case 0:
      check_auth_line(text);
      break;
    case 1:
      check_userdb_line(text);
      break;
    case 2:
      check_escape(text);
      break;
    default:
      check_endpoint(text);
      break;
  }
  return 0;
}
