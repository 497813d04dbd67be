// See dovecot_protocol.h.
#include "mta/auth/dovecot_protocol.h"

#include "common/ascii.h"

namespace stokend::auth {
namespace {

constexpr char escape_octet = '\001';

std::optional<std::uint32_t> parse_id(std::string_view text) {
  if (text.empty() || text.size() > 10) return std::nullopt;
  const auto value = parse_decimal(text);
  if (!value || *value == 0 || *value > 0xffffffffULL) return std::nullopt;
  return static_cast<std::uint32_t>(*value);
}

bool is_base64_text(std::string_view text) {
  for (char c : text) {
    const bool ok = (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
                    c == '+' || c == '/' || c == '=';
    if (!ok) return false;
  }
  return text.size() % 4 == 0;
}

// A login that can be logged, compared and written in a reply: printable
// US-ASCII or UTF-8, no controls and no spaces, at most 255 octets.
bool is_printable_login(std::string_view text) {
  if (text.empty() || text.size() > 255) return false;
  for (unsigned char c : text) {
    if (c <= 0x20 || c == 0x7f) return false;
  }
  return true;
}

// "key=value" or a bare flag "key".
std::pair<std::string_view, std::string_view> key_value(std::string_view field) {
  const std::size_t equals = field.find('=');
  if (equals == std::string_view::npos) return {field, {}};
  return {field.substr(0, equals), field.substr(equals + 1)};
}

}  // namespace

std::vector<std::string> split_fields(std::string_view line) {
  std::vector<std::string> fields(1);
  for (std::size_t i = 0; i < line.size(); ++i) {
    const char c = line[i];
    if (c == '\t') {
      fields.emplace_back();
    } else if (c == escape_octet && i + 1 < line.size()) {
      switch (line[++i]) {
        case '1':
          fields.back() += escape_octet;
          break;
        case 't':
          fields.back() += '\t';
          break;
        case 'r':
          fields.back() += '\r';
          break;
        case 'n':
          fields.back() += '\n';
          break;
        case '0':
          fields.back() += '\0';
          break;
        default:
          fields.back() += line[i];
          break;  // Dovecot's unescape keeps it
      }
    } else {
      fields.back() += c;
    }
  }
  return fields;
}

std::string escape_field(std::string_view field) {
  std::string out;
  out.reserve(field.size());
  for (char c : field) {
    switch (c) {
      case escape_octet:
        out += "\0011";
        break;
      case '\t':
        out += "\001t";
        break;
      case '\r':
        out += "\001r";
        break;
      case '\n':
        out += "\001n";
        break;
      case '\0':
        out += "\0010";
        break;
      default:
        out += c;
    }
  }
  return out;
}

AuthServerParse parse_auth_server_line(std::string_view text) {
  AuthServerParse result;
  const auto fields = split_fields(text);
  const std::string& command = fields[0];
  AuthServerLine line;
  auto fail = [&](std::string error) {
    result.error = command + ": " + std::move(error);
    return result;
  };
  if (command == "VERSION") {
    line.kind = AuthServerLine::Kind::version;
    if (fields.size() < 3) return fail("expected VERSION major minor");
    const auto major = parse_decimal(fields[1]);
    if (!major || !parse_decimal(fields[2]) || *major > 1000) return fail("version not a number");
    line.major_version = static_cast<unsigned>(*major);
  } else if (command == "MECH") {
    line.kind = AuthServerLine::Kind::mech;
    if (fields.size() < 2 || fields[1].empty() || fields[1].size() > 64) {
      return fail("expected a mechanism name");
    }
    // RFC 4422 §3.1: names are upper-case letters, digits, '-' and '_'.
    for (char c : fields[1]) {
      if (!((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
            c == '-' || c == '_')) {
        return fail("mechanism name not of RFC 4422 characters");
      }
    }
    line.mechanism = ascii_uppercase(fields[1]);
    line.flags.assign(fields.begin() + 2, fields.end());
  } else if (command == "SPID" || command == "CUID" || command == "COOKIE") {
    line.kind = command == "SPID"   ? AuthServerLine::Kind::spid
                : command == "CUID" ? AuthServerLine::Kind::cuid
                                    : AuthServerLine::Kind::cookie;
    if (fields.size() < 2) return fail("expected a value");
  } else if (command == "DONE") {
    line.kind = AuthServerLine::Kind::done;
  } else if (command == "OK" || command == "CONT" || command == "FAIL") {
    line.kind = command == "OK"     ? AuthServerLine::Kind::ok
                : command == "CONT" ? AuthServerLine::Kind::cont
                                    : AuthServerLine::Kind::fail;
    if (fields.size() < 2) return fail("expected a request id");
    const auto id = parse_id(fields[1]);
    if (!id) return fail("request id not a number from 1 to 4294967295");
    line.id = *id;
    if (line.kind == AuthServerLine::Kind::cont) {
      const std::string challenge = fields.size() > 2 ? fields[2] : "";
      if (!is_base64_text(challenge)) return fail("challenge not base64");
      line.challenge = challenge;
    } else {
      for (std::size_t i = 2; i < fields.size(); ++i) {
        const auto [key, value] = key_value(fields[i]);
        if (key == "user") {
          if (!is_printable_login(value)) return fail("user= not a printable login");
          line.user = std::string(value);
        } else if (key == "temp") {
          line.temporary = true;
        } else if (key == "reason") {
          line.reason = std::string(value);
        }
      }
      if (line.kind == AuthServerLine::Kind::ok && line.user.empty()) {
        return fail("no user= in the answer");
      }
    }
  } else {
    line.kind = AuthServerLine::Kind::other;
  }
  result.line = std::move(line);
  return result;
}

bool relayable_mechanism(const AuthServerLine& mech) {
  for (const auto& flag : mech.flags) {
    if (flag == "private" || flag == "anonymous") return false;
  }
  if (mech.mechanism == "EXTERNAL" || mech.mechanism == "ANONYMOUS") return false;
  return !mech.mechanism.ends_with("-PLUS");
}

UserdbParse parse_userdb_line(std::string_view text) {
  UserdbParse result;
  const auto fields = split_fields(text);
  const std::string& command = fields[0];
  UserdbLine line;
  auto fail = [&](std::string error) {
    result.error = command + ": " + std::move(error);
    return result;
  };
  if (command == "VERSION") {
    line.kind = UserdbLine::Kind::version;
    if (fields.size() < 3) return fail("expected VERSION major minor");
    const auto major = parse_decimal(fields[1]);
    if (!major || !parse_decimal(fields[2]) || *major > 1000) return fail("version not a number");
    line.major_version = static_cast<unsigned>(*major);
  } else if (command == "SPID") {
    line.kind = UserdbLine::Kind::spid;
  } else if (command == "USER" || command == "NOTFOUND" || command == "FAIL") {
    line.kind = command == "USER"       ? UserdbLine::Kind::user
                : command == "NOTFOUND" ? UserdbLine::Kind::notfound
                                        : UserdbLine::Kind::fail;
    if (fields.size() < 2) return fail("expected a request id");
    const auto id = parse_id(fields[1]);
    if (!id) return fail("request id not a number from 1 to 4294967295");
    line.id = *id;
    std::size_t first_field = 2;
    if (line.kind == UserdbLine::Kind::user) {
      if (fields.size() < 3 || !is_printable_login(fields[2])) {
        return fail("expected a printable user name");
      }
      line.user = fields[2];
      first_field = 3;
    }
    for (std::size_t i = first_field; i < fields.size(); ++i) {
      const auto [key, value] = key_value(fields[i]);
      if (line.kind == UserdbLine::Kind::fail && key == "reason") line.reason = std::string(value);
      if (line.kind == UserdbLine::Kind::user) line.fields.emplace_back(key, value);
    }
  } else {
    line.kind = UserdbLine::Kind::other;
  }
  result.line = std::move(line);
  return result;
}

}  // namespace stokend::auth
