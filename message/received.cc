// The Received trace header (RFC 5321 §4.4) and the RFC 5322 §3.3 date.
//
// Layout, one clause group per line, each folded further if it would pass
// 78 characters (RFC 5322 §2.1.1):
//
//   Received: from HELO ([IP])
//   	by HOST (stokend) with PROTOCOL id ID
//   	(TLS DESCRIPTION)
//   	for <RECIPIENT>; DATE
//
// The HELO name comes from the client, so it is sanitised: a name that could
// close the comment, inject a clause or a line break would let a sender forge
// trace information.
#include "message/received.h"

#include <cstdio>
#include <ctime>
#include <string_view>
#include <vector>

namespace stokend::message {
namespace {

// RFC 5322 §2.1.1: lines SHOULD stay within 78 characters, excluding CRLF.
constexpr std::size_t preferred_line_length = 78;

// The longest domain name (RFC 1035 §2.3.4); a longer HELO is truncated.
constexpr std::size_t max_helo_length = 255;

constexpr char replacement_character = '?';

bool is_printable_ascii(char c) { return c > ' ' && c < 0x7f; }

// Keeps printable ASCII except what would end a comment or the stamp:
// '(' ')' '\' (RFC 5322 §3.2.2 comments) and ';' (separates the date,
// RFC 5321 §4.4); everything else, spaces included, becomes '?'.
std::string sanitise_word(std::string_view text, std::size_t max_length = std::string::npos) {
  std::string result;
  for (char c : text.substr(0, max_length)) {
    const bool keep = is_printable_ascii(c) && c != '(' && c != ')' && c != '\\' && c != ';';
    result += keep ? c : replacement_character;
  }
  return result;
}

// Text for inside a comment: as sanitise_word, but spaces are kept.
std::string sanitise_comment(std::string_view text) {
  std::string result;
  for (char c : text) {
    const bool keep = c == ' ' || (is_printable_ascii(c) && c != '(' && c != ')' && c != '\\');
    result += keep ? c : replacement_character;
  }
  return result;
}

// The recipient may hold UTF-8 (RFC 6531 / RFC 6532), so bytes above 0x7f
// stay; control characters never do.
std::string sanitise_path(std::string_view recipient) {
  std::string result;
  for (char c : recipient) {
    const auto byte = static_cast<unsigned char>(c);
    result += (byte > ' ' && byte != 0x7f) ? c : replacement_character;
  }
  if (result.empty() || result.front() != '<') result = "<" + result + ">";
  return result;
}

// RFC 5321 §4.1.3 address literal: "[192.0.2.1]" or "[IPv6:2001:db8::1]".
std::string address_literal(std::string_view address) {
  const std::string clean = sanitise_word(address);
  if (clean.empty() || clean.front() == '[') return clean;
  if (clean.find(':') != std::string::npos) return "[IPv6:" + clean + "]";
  return "[" + clean + "]";
}

// Unbreakable pieces of the header; each group starts on a new line.
using Group = std::vector<std::string>;

std::string fold(const std::vector<Group>& groups) {
  std::string header = "Received:";
  std::size_t line_length = header.size();
  bool line_has_pieces = false;  // a piece too long for any line is not moved in vain
  bool first_group = true;
  for (const Group& group : groups) {
    bool first_piece = true;
    for (const std::string& piece : group) {
      const bool group_starts = first_piece && !first_group;
      const bool too_long = line_length + 1 + piece.size() > preferred_line_length;
      // RFC 5322 §2.2.3: folding is a CRLF before whitespace.
      if (group_starts || (too_long && line_has_pieces)) {
        header += "\r\n\t";
        line_length = 1;
      } else {
        header += ' ';
        ++line_length;
      }
      header += piece;
      line_length += piece.size();
      line_has_pieces = true;
      first_piece = false;
    }
    if (!group.empty()) first_group = false;
  }
  header += "\r\n";
  return header;
}

}  // namespace

std::string with_protocol(const ProtocolUsed& used) {
  std::string word = used.smtputf8   ? (used.lmtp ? "UTF8LMTP" : "UTF8SMTP")
                     : used.lmtp     ? "LMTP"
                     : used.extended ? "ESMTP"
                                     : "SMTP";
  if (used.tls) word += 'S';
  if (used.authenticated) word += 'A';
  return word;
}

std::string received_header(const ReceivedInfo& info) {
  std::vector<Group> groups;

  // From-domain = "FROM" FWS Extended-Domain, with TCP-info being the
  // address literal (no reverse DNS name is claimed). Without a usable HELO
  // name the address literal stands in as the domain.
  const std::string client = address_literal(info.client_address);
  std::string helo = sanitise_word(info.helo_name, max_helo_length);
  if (helo.empty()) helo = client.empty() ? "unknown" : client;
  Group from = {"from " + helo};
  if (!client.empty()) from.push_back("(" + client + ")");
  groups.push_back(from);

  // By-domain, then Opt-info: With (RFC 3848 protocol types) and ID.
  std::string host = sanitise_word(info.by_host);
  if (host.empty()) host = "localhost";
  Group by = {"by " + host, "(stokend)"};
  if (const std::string protocol = sanitise_word(info.protocol); !protocol.empty()) {
    by.push_back("with " + protocol);
  }
  if (const std::string id = sanitise_word(info.id); !id.empty()) by.push_back("id " + id);
  groups.push_back(by);

  // The TLS version and cipher, as a comment (CFWS may precede FOR or ';').
  if (!info.tls_description.empty()) {
    groups.push_back({"(" + sanitise_comment(info.tls_description) + ")"});
  }

  // For = "FOR" FWS Path, only for a single recipient: with several, naming
  // them would disclose Bcc recipients to each other (RFC 5321 §7.2).
  // Then ";" FWS date-time.
  const std::string date = rfc5322_date(info.when);
  if (!info.recipient.empty()) {
    groups.push_back({"for " + sanitise_path(info.recipient) + ";", date});
  } else {
    groups.back().back() += ";";
    groups.back().push_back(date);
  }
  return fold(groups);
}

std::string rfc5322_date(std::chrono::system_clock::time_point when) {
  // Fixed English names (RFC 5322 §3.3): strftime would follow the locale.
  static constexpr const char* day_names[] = {"Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"};
  static constexpr const char* month_names[] = {"Jan", "Feb", "Mar", "Apr", "May", "Jun",
                                                "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};
  const std::time_t seconds = std::chrono::system_clock::to_time_t(when);
  std::tm local{};
  if (::localtime_r(&seconds, &local) == nullptr) return "Thu, 1 Jan 1970 00:00:00 +0000";

  // zone = ("+" / "-") 4DIGIT, the offset from UTC in hours and minutes.
  const long offset_minutes = local.tm_gmtoff / 60;
  const char sign = offset_minutes < 0 ? '-' : '+';
  const long magnitude = offset_minutes < 0 ? -offset_minutes : offset_minutes;

  char text[64];
  std::snprintf(text, sizeof text, "%s, %d %s %04d %02d:%02d:%02d %c%02ld%02ld",
                day_names[local.tm_wday % 7], local.tm_mday, month_names[local.tm_mon % 12],
                local.tm_year + 1900, local.tm_hour, local.tm_min, local.tm_sec, sign,
                magnitude / 60, magnitude % 60);
  return text;
}

}  // namespace stokend::message
