// RFC 5321 §4.1.2 path and mailbox parsing, extended for SMTPUTF8 by
// RFC 6531 §3.3. See address.h for the contract.
//
// The parser is a single left-to-right pass over the input with one byte of
// lookahead; it stops at the first violation and names it, so a client gets
// a reply that says what is wrong with its address.
#include "message/address.h"

#include <utility>
#include <vector>

#include "common/ascii.h"

namespace stokend::message {
namespace {

// RFC 5321 §4.5.3.1.1: local part at most 64 octets.
constexpr std::size_t max_local_part_octets = 64;
// RFC 5321 §4.5.3.1.2: domain at most 255 octets.
constexpr std::size_t max_domain_octets = 255;
// RFC 5321 §4.5.3.1.3: path at most 256 octets, angle brackets included.
constexpr std::size_t max_path_octets = 256;
// RFC 1035 §2.3.4: a DNS label is at most 63 octets.
constexpr std::size_t max_label_octets = 63;

bool is_alpha(unsigned char byte) {
  return (byte >= 'A' && byte <= 'Z') || (byte >= 'a' && byte <= 'z');
}
bool is_digit(unsigned char byte) { return byte >= '0' && byte <= '9'; }
bool is_hex_digit(unsigned char byte) {
  return is_digit(byte) || (byte >= 'A' && byte <= 'F') || (byte >= 'a' && byte <= 'f');
}
bool is_let_dig(unsigned char byte) { return is_alpha(byte) || is_digit(byte); }

// RFC 5322 §3.2.3 atext (ASCII part; RFC 6531 adds UTF8-non-ascii).
bool is_ascii_atext(unsigned char byte) {
  if (is_let_dig(byte)) return true;
  switch (byte) {
    case '!':
    case '#':
    case '$':
    case '%':
    case '&':
    case '\'':
    case '*':
    case '+':
    case '-':
    case '/':
    case '=':
    case '?':
    case '^':
    case '_':
    case '`':
    case '{':
    case '|':
    case '}':
    case '~':
      return true;
    default:
      return false;
  }
}

// RFC 5321 §4.1.2 qtextSMTP: printable ASCII except '"' and '\'.
bool is_ascii_qtext(unsigned char byte) {
  return byte >= 32 && byte <= 126 && byte != '"' && byte != '\\';
}

bool equals_ignoring_case(std::string_view left, std::string_view right) {
  if (left.size() != right.size()) return false;
  for (std::size_t index = 0; index < left.size(); ++index) {
    unsigned char a = static_cast<unsigned char>(left[index]);
    unsigned char b = static_cast<unsigned char>(right[index]);
    if (a >= 'A' && a <= 'Z') a = static_cast<unsigned char>(a - 'A' + 'a');
    if (b >= 'A' && b <= 'Z') b = static_cast<unsigned char>(b - 'A' + 'a');
    if (a != b) return false;
  }
  return true;
}

// Length of the well-formed UTF-8 sequence (RFC 3629 §4) that starts at
// text[position] with a non-ASCII lead byte, or 0 when it is malformed
// (overlong forms, surrogates and code points above U+10FFFF are malformed).
std::size_t utf8_sequence_length(std::string_view text, std::size_t position) {
  const auto byte_at = [&](std::size_t offset) -> unsigned {
    return position + offset < text.size() ? static_cast<unsigned char>(text[position + offset])
                                           : 0u;
  };
  const auto continuation = [](unsigned byte) { return byte >= 0x80 && byte <= 0xBF; };
  const unsigned lead = byte_at(0);
  const unsigned second = byte_at(1);
  if (lead >= 0xC2 && lead <= 0xDF) return continuation(second) ? 2 : 0;
  if (lead >= 0xE0 && lead <= 0xEF) {
    const unsigned low = lead == 0xE0 ? 0xA0 : 0x80;
    const unsigned high = lead == 0xED ? 0x9F : 0xBF;
    if (second < low || second > high) return 0;
    return continuation(byte_at(2)) ? 3 : 0;
  }
  if (lead >= 0xF0 && lead <= 0xF4) {
    const unsigned low = lead == 0xF0 ? 0x90 : 0x80;
    const unsigned high = lead == 0xF4 ? 0x8F : 0xBF;
    if (second < low || second > high) return 0;
    return continuation(byte_at(2)) && continuation(byte_at(3)) ? 4 : 0;
  }
  return 0;
}

// RFC 5321 §4.1.3 Snum: 1*3DIGIT with a value 0..255.
bool is_snum(std::string_view text) {
  if (text.empty() || text.size() > 3) return false;
  unsigned value = 0;
  for (const char character : text) {
    if (!is_digit(static_cast<unsigned char>(character))) return false;
    value = value * 10 + static_cast<unsigned>(character - '0');
  }
  return value <= 255;
}

std::vector<std::string_view> split(std::string_view text, char separator) {
  std::vector<std::string_view> parts;
  std::size_t start = 0;
  while (true) {
    const std::size_t end = text.find(separator, start);
    if (end == std::string_view::npos) {
      parts.push_back(text.substr(start));
      return parts;
    }
    parts.push_back(text.substr(start, end - start));
    start = end + 1;
  }
}

// RFC 5321 §4.1.3 IPv4-address-literal: Snum 3("." Snum).
bool is_ipv4_literal(std::string_view text) {
  const auto parts = split(text, '.');
  if (parts.size() != 4) return false;
  for (const auto part : parts) {
    if (!is_snum(part)) return false;
  }
  return true;
}

// Counts the 16-bit groups of one side of an IPv6 address ("1:2:3" or
// "1:2:1.2.3.4"); an embedded IPv4 address counts as two groups and is only
// allowed last (and only where allow_ipv4). Returns -1 when malformed.
int count_ipv6_groups(std::string_view side, bool allow_ipv4) {
  if (side.empty()) return 0;
  const auto parts = split(side, ':');
  int groups = 0;
  for (std::size_t index = 0; index < parts.size(); ++index) {
    const auto part = parts[index];
    const bool last = index + 1 == parts.size();
    if (last && allow_ipv4 && part.find('.') != std::string_view::npos) {
      if (!is_ipv4_literal(part)) return -1;
      groups += 2;
      continue;
    }
    // RFC 5321 §4.1.3 IPv6-hex: 1*4HEXDIG.
    if (part.empty() || part.size() > 4) return -1;
    for (const char character : part) {
      if (!is_hex_digit(static_cast<unsigned char>(character))) return -1;
    }
    ++groups;
  }
  return groups;
}

// RFC 5321 §4.1.3 IPv6-addr: IPv6-full / IPv6-comp / IPv6v4-full /
// IPv6v4-comp. Full forms have exactly 8 groups; with "::" at most 6 groups
// may be written ("::" stands for at least two zero groups).
bool is_ipv6_address(std::string_view text) {
  const std::size_t compression = text.find("::");
  if (compression == std::string_view::npos) {
    return count_ipv6_groups(text, true) == 8;
  }
  const std::string_view left = text.substr(0, compression);
  const std::string_view right = text.substr(compression + 2);
  if (right.find("::") != std::string_view::npos) return false;
  const int left_groups = count_ipv6_groups(left, false);
  const int right_groups = count_ipv6_groups(right, true);
  if (left_groups < 0 || right_groups < 0) return false;
  return left_groups + right_groups <= 6;
}

// Dot-string test for re-encoding (RFC 5321 §4.1.2): atoms of atext (plus
// UTF-8, RFC 6531) separated by single dots.
bool is_dot_string(std::string_view text) {
  if (text.empty()) return false;
  bool atom_empty = true;
  for (const char character : text) {
    const auto byte = static_cast<unsigned char>(character);
    if (byte == '.') {
      if (atom_empty) return false;
      atom_empty = true;
    } else if (is_ascii_atext(byte) || byte >= 0x80) {
      atom_empty = false;
    } else {
      return false;
    }
  }
  return !atom_empty;
}

class AddressParser {
 public:
  AddressParser(std::string_view input, bool utf8) : input_(input), utf8_(utf8) {}

  std::size_t position() const { return position_; }
  const std::string& error() const { return error_; }
  bool at_end() const { return position_ >= input_.size(); }
  // The next byte, or 0 at the end of input (NUL is never valid here).
  unsigned char peek() const {
    return at_end() ? 0 : static_cast<unsigned char>(input_[position_]);
  }
  bool accept(char expected) {
    if (peek() != static_cast<unsigned char>(expected) || at_end()) return false;
    ++position_;
    return true;
  }
  bool fail(std::string message) {
    if (error_.empty()) error_ = std::move(message);
    return false;
  }

  // RFC 5321 §4.1.2 Mailbox = Local-part "@" ( Domain / address-literal ).
  bool parse_mailbox(Mailbox& mailbox) {
    if (!parse_local_part(mailbox)) return false;
    if (peek() != '@' || at_end()) {
      if (at_end() || peek() == '>') return fail("address has no @domain");
      return fail("invalid character in local part");
    }
    ++position_;
    return parse_domain_or_literal(mailbox);
  }

  // RFC 5321 §4.1.2 A-d-l = At-domain *( "," At-domain ), At-domain = "@" Domain.
  bool parse_source_route() {
    do {
      if (!accept('@')) return fail("invalid source route: expected '@domain'");
      std::string ignored;
      if (!parse_dot_domain(ignored)) return false;
    } while (accept(','));
    if (!accept(':')) {
      // "<@example.com>" is far more likely a missing local part than a route.
      if (peek() == '>' && !at_end()) return fail("empty local part");
      return fail("invalid source route: expected ':' after the route");
    }
    return true;
  }

 private:
  // Consumes one UTF-8 sequence (RFC 6531 UTF8-non-ascii) or fails.
  bool consume_utf8(std::string_view where, std::string* output) {
    if (!utf8_) {
      return fail("non-ASCII " + std::string(where) + " requires SMTPUTF8");
    }
    const std::size_t length = utf8_sequence_length(input_, position_);
    if (length == 0) return fail("invalid UTF-8 in " + std::string(where));
    if (output != nullptr) output->append(input_.substr(position_, length));
    position_ += length;
    return true;
  }

  // RFC 5321 §4.1.2 Local-part = Dot-string / Quoted-string.
  bool parse_local_part(Mailbox& mailbox) {
    const std::size_t start = position_;
    if (peek() == '"' && !at_end()) {
      if (!parse_quoted_string(mailbox.local_part)) return false;
      mailbox.local_part_quoted = true;
    } else {
      if (!parse_dot_string(mailbox.local_part)) return false;
    }
    if (position_ - start > max_local_part_octets) {
      return fail("local part longer than 64 octets");
    }
    return true;
  }

  // Dot-string = Atom *("." Atom); Atom = 1*atext.
  bool parse_dot_string(std::string& output) {
    const std::size_t start = position_;
    while (true) {
      const std::size_t atom_start = position_;
      while (!at_end()) {
        const unsigned char byte = peek();
        if (is_ascii_atext(byte)) {
          ++position_;
        } else if (byte >= 0x80) {
          if (!consume_utf8("local part", nullptr)) return false;
        } else {
          break;
        }
      }
      if (position_ == atom_start) {
        const unsigned char next = peek();
        if (position_ == start && (at_end() || next == '@' || next == '>')) {
          return fail("empty local part");
        }
        if (next == '.' || position_ != start) {
          return fail("leading, trailing or double dot in local part");
        }
        return fail("invalid character in local part");
      }
      if (!accept('.')) break;
    }
    output.assign(input_.substr(start, position_ - start));
    return true;
  }

  // Quoted-string = DQUOTE *QcontentSMTP DQUOTE, QcontentSMTP = qtextSMTP /
  // quoted-pairSMTP, quoted-pairSMTP = "\" %d32-126. The decoded value drops
  // the quotes and resolves each quoted pair to its second character.
  bool parse_quoted_string(std::string& output) {
    ++position_;  // opening quote
    output.clear();
    while (true) {
      if (at_end()) return fail("unterminated quoted local part");
      const unsigned char byte = peek();
      if (byte == '"') {
        ++position_;
        return true;
      }
      if (byte == '\\') {
        ++position_;
        if (at_end()) return fail("unterminated quoted local part");
        const unsigned char escaped = peek();
        if (escaped < 32 || escaped > 126) return fail("invalid escaped character in local part");
        output.push_back(static_cast<char>(escaped));
        ++position_;
      } else if (is_ascii_qtext(byte)) {
        output.push_back(static_cast<char>(byte));
        ++position_;
      } else if (byte >= 0x80) {
        if (!consume_utf8("local part", &output)) return false;
      } else {
        return fail("invalid character in quoted local part");
      }
    }
  }

  bool parse_domain_or_literal(Mailbox& mailbox) {
    if (peek() == '[' && !at_end()) {
      mailbox.domain_is_literal = true;
      return parse_address_literal(mailbox.domain);
    }
    return parse_dot_domain(mailbox.domain);
  }

  // Domain = sub-domain *("." sub-domain); sub-domain = Let-dig [Ldh-str]
  // (RFC 5321 §4.1.2), or a U-label when utf8 (RFC 6531 §3.3).
  bool parse_dot_domain(std::string& output) {
    const std::size_t start = position_;
    while (true) {
      const std::size_t label_start = position_;
      while (!at_end()) {
        const unsigned char byte = peek();
        if (is_let_dig(byte) || byte == '-') {
          ++position_;
        } else if (byte >= 0x80) {
          if (!consume_utf8("domain", nullptr)) return false;
        } else {
          break;
        }
      }
      const std::string_view label = input_.substr(label_start, position_ - label_start);
      if (label.empty()) {
        if (position_ == start) {
          if (at_end() || peek() == '>' || peek() == ',' || peek() == ':') {
            return fail("missing domain");
          }
          return fail("invalid character in domain");
        }
        return fail("leading, trailing or double dot in domain");
      }
      if (label.front() == '-' || label.back() == '-') {
        return fail("domain label starts or ends with '-'");
      }
      if (label.size() > max_label_octets) return fail("domain label longer than 63 octets");
      if (!accept('.')) break;
    }
    if (position_ - start > max_domain_octets) return fail("domain longer than 255 octets");
    output.assign(input_.substr(start, position_ - start));
    return true;
  }

  // address-literal = "[" ( IPv4-address-literal / IPv6-address-literal /
  // General-address-literal ) "]" (RFC 5321 §4.1.3). No general address
  // literal tag is registered besides IPv6, so those are refused.
  bool parse_address_literal(std::string& output) {
    const std::size_t start = position_;
    const std::size_t close = input_.find(']', start);
    if (close == std::string_view::npos) return fail("unterminated address literal");
    const std::string_view content = input_.substr(start + 1, close - start - 1);
    constexpr std::string_view ipv6_tag = "IPv6:";
    bool valid = false;
    if (content.size() >= ipv6_tag.size() &&
        equals_ignoring_case(content.substr(0, ipv6_tag.size()), ipv6_tag)) {
      valid = is_ipv6_address(content.substr(ipv6_tag.size()));
    } else {
      valid = is_ipv4_literal(content);
    }
    if (!valid) return fail("invalid address literal");
    position_ = close + 1;
    if (position_ - start > max_domain_octets) return fail("domain longer than 255 octets");
    output.assign(input_.substr(start, position_ - start));
    return true;
  }

  std::string_view input_;
  std::size_t position_ = 0;
  bool utf8_;
  std::string error_;
};

}  // namespace

std::string Mailbox::to_string() const {
  std::string encoded;
  if (is_dot_string(local_part)) {
    encoded = local_part;
  } else {
    // RFC 5321 §4.1.2 Quoted-string; only '"' and '\' need a quoted pair.
    encoded.reserve(local_part.size() + 2);
    encoded.push_back('"');
    for (const char character : local_part) {
      if (character == '"' || character == '\\') encoded.push_back('\\');
      encoded.push_back(character);
    }
    encoded.push_back('"');
  }
  // "<Postmaster>" (RFC 5321 §4.1.1.3) is the one mailbox without a domain.
  if (domain.empty()) return encoded;
  encoded.push_back('@');
  encoded.append(domain);
  return encoded;
}

std::string Mailbox::normalized() const { return ascii_lowercase(to_string()); }

PathParseResult parse_path(std::string_view input, bool allow_null, bool utf8) {
  PathParseResult result;
  AddressParser parser(input, utf8);
  if (!parser.accept('<')) {
    result.error = "address must be enclosed in '<' and '>'";
    return result;
  }
  Path path;
  if (parser.accept('>')) {
    if (!allow_null) {
      result.error = "null address <> not allowed here";
      return result;
    }
    path.is_null = true;
    result.path = std::move(path);
    result.consumed = parser.position();
    return result;
  }
  if (parser.peek() == '@') {
    const std::size_t route_start = parser.position();
    if (!parser.parse_source_route()) {
      result.error = parser.error();
      return result;
    }
    // Recorded without the trailing ':'.
    path.source_route.assign(input.substr(route_start, parser.position() - 1 - route_start));
  }
  if (!parser.parse_mailbox(path.mailbox)) {
    result.error = parser.error();
    return result;
  }
  if (!parser.accept('>')) {
    if (parser.at_end()) {
      result.error = "missing '>' at end of address";
    } else if (parser.peek() == '@') {
      // user@remote@local: RFC 5321 only allows '@' in a quoted local part.
      result.error = "unquoted '@' in local part";
    } else if (path.mailbox.domain_is_literal) {
      result.error = "unexpected character after address literal";
    } else {
      result.error = "invalid character in domain";
    }
    return result;
  }
  if (parser.position() > max_path_octets) {
    result.error = "address longer than 256 octets";
    return result;
  }
  result.consumed = parser.position();
  result.path = std::move(path);
  return result;
}

std::optional<Mailbox> parse_mailbox(std::string_view input, bool utf8) {
  AddressParser parser(input, utf8);
  Mailbox mailbox;
  if (!parser.parse_mailbox(mailbox) || !parser.at_end()) return std::nullopt;
  return mailbox;
}

std::string relay_trick(const Path& path) {
  if (path.is_null) return "";
  if (!path.source_route.empty()) return "source route";
  const std::string& local_part = path.mailbox.local_part;
  if (local_part.find('@') != std::string::npos) return "@ in local part";
  if (local_part.find('%') != std::string::npos) return "percent hack";
  if (local_part.find('!') != std::string::npos) return "bang path";
  return "";
}

}  // namespace stokend::message
