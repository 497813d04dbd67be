// Reading and writing COI contact storage messages; see coi_contact_message.h.
//
// Tolerant where clients differ (field case, LF or CRLF, tokens in angle
// brackets, several tokens in one field) and strict where a mistake would
// bind a token to the wrong contact: an address counts only when its hash is
// one of the message's COI-From-Hash values.
#include "tokens/coi_contact_message.h"

#include <algorithm>
#include <chrono>

#include "common/ascii.h"
#include "common/base64.h"
#include "message/address.h"
#include "message/headers.h"
#include "message/received.h"
#include "tokens/pair_hash.h"

namespace stokend::tokens {
namespace {

constexpr std::string_view contact_content = "contact";
constexpr std::string_view blocked_field = "COI-Blocked";

// The body is read this far for addresses: an h-card is a few hundred
// octets, and a photo or an encrypted part holds no address worth finding.
constexpr std::size_t max_body_scanned = 1024 * 1024;
// At most this many address-like strings are hashed per message.
constexpr std::size_t max_address_candidates = 1000;
// RFC 5321 §4.5.3.1.1 and .2: local part and domain length limits.
constexpr std::size_t max_local_part_length = 64;
constexpr std::size_t max_domain_length = 255;

// The fields render_contact_message() writes, in its order.
constexpr std::string_view rendered_field_names[] = {"From",
                                                     "To",
                                                     "Subject",
                                                     "Date",
                                                     "Message-ID",
                                                     "MIME-Version",
                                                     "Chat-Version",
                                                     "Chat-Content",
                                                     "Content-Type",
                                                     "Content-Transfer-Encoding",
                                                     coi_from_hash_field,
                                                     coi_token_in_field,
                                                     coi_token_out_field};

bool is_whitespace(char c) { return c == ' ' || c == '\t' || c == '\r' || c == '\n'; }

std::string_view trim(std::string_view text) {
  while (!text.empty() && is_whitespace(text.front())) text.remove_prefix(1);
  while (!text.empty() && is_whitespace(text.back())) text.remove_suffix(1);
  return text;
}

bool same_name(std::string_view a, std::string_view b) {
  return a.size() == b.size() && ascii_lowercase(a) == ascii_lowercase(b);
}

template <typename Items, typename Item>
bool contains(const Items& items, const Item& item) {
  return std::find(items.begin(), items.end(), item) != items.end();
}

void add_unique(std::vector<std::string>& items, std::string item) {
  if (!contains(items, item)) items.push_back(std::move(item));
}

bool is_lower_hex(std::string_view text) {
  return std::all_of(text.begin(), text.end(),
                     [](char c) { return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'); });
}

std::string hex(const Sha3Digest& digest) {
  constexpr char digits[] = "0123456789abcdef";
  std::string text;
  text.reserve(digest.size() * 2);
  for (const std::uint8_t octet : digest) {
    text += digits[octet >> 4];
    text += digits[octet & 0x0f];
  }
  return text;
}

// A value quoted in a problem: bounded, since the input is anyone's.
std::string quoted(std::string_view value) {
  constexpr std::size_t shown = 40;
  if (value.size() <= shown) return "'" + std::string(value) + "'";
  return "'" + std::string(value.substr(0, shown)) + "...'";
}

// Everything after the header section (the first empty line), or nothing.
std::string_view body_of(std::string_view message) {
  std::size_t position = 0;
  while (position < message.size()) {
    const std::size_t newline = message.find('\n', position);
    if (newline == std::string_view::npos) return {};
    std::string_view line = message.substr(position, newline - position);
    if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
    position = newline + 1;
    if (line.empty()) return message.substr(position);
  }
  return {};
}

// The address in a From or To value: inside the first angle brackets, or the
// whole value; nullopt when that is not one address.
std::optional<std::string> address_in_field(std::string_view value) {
  const std::size_t open = value.find('<');
  if (open != std::string_view::npos) {
    const std::size_t close = value.find('>', open);
    if (close == std::string_view::npos) return std::nullopt;
    value = value.substr(open + 1, close - open - 1);
  }
  const auto mailbox = message::parse_mailbox(trim(value));
  if (!mailbox || mailbox->domain.empty()) return std::nullopt;
  return normalize_address(mailbox->to_string());
}

// RFC 5322 atext and '.', and UTF-8 (RFC 6532).
bool is_local_part_octet(unsigned char c) {
  if (c >= 0x80 || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9')) {
    return true;
  }
  return std::string_view("!#$%&'*+-/=?^_`{|}~.").find(static_cast<char>(c)) !=
         std::string_view::npos;
}

bool is_domain_octet(unsigned char c) {
  return c >= 0x80 || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
         c == '-' || c == '.';
}

// Every address-like string around an '@' of the body whose hash is one of
// from_hashes: the h-card's u-email, a mailto: link, an "Email:" line.
std::vector<std::string> addresses_in_body(std::string_view body,
                                           const std::vector<std::string>& from_hashes) {
  std::vector<std::string> found;
  body = body.substr(0, std::min(body.size(), max_body_scanned));
  std::size_t candidates = 0;
  for (std::size_t at = body.find('@');
       at != std::string_view::npos && candidates < max_address_candidates;
       at = body.find('@', at + 1)) {
    std::size_t start = at;
    while (start > 0 && at - start < max_local_part_length &&
           is_local_part_octet(static_cast<unsigned char>(body[start - 1]))) {
      --start;
    }
    while (start < at && body[start] == '.') ++start;
    std::size_t end = at + 1;
    while (end < body.size() && end - at - 1 < max_domain_length &&
           is_domain_octet(static_cast<unsigned char>(body[end]))) {
      ++end;
    }
    while (end > at + 1 && body[end - 1] == '.') --end;
    if (start == at || end == at + 1) continue;
    ++candidates;
    std::string address = normalize_address(body.substr(start, end - start));
    if (contains(from_hashes, coi_from_hash_hex(address))) add_unique(found, std::move(address));
  }
  return found;
}

// The tokens of one COI-TokenIn/Out value: one per whitespace-separated
// word, each possibly in angle brackets (as Submission-Token examples write
// them).
std::vector<std::string_view> tokens_in_value(std::string_view value) {
  std::vector<std::string_view> words;
  while (true) {
    value = trim(value);
    if (value.empty()) return words;
    const auto end = std::find_if(value.begin(), value.end(), is_whitespace);
    std::string_view word = value.substr(0, static_cast<std::size_t>(end - value.begin()));
    value.remove_prefix(word.size());
    if (word.size() >= 2 && word.front() == '<' && word.back() == '>') {
      word = word.substr(1, word.size() - 2);
    }
    if (!word.empty()) words.push_back(word);
  }
}

// A token as a field value: as it is, unless it would lose its brackets to
// tokens_in_value() when read back.
std::string token_field_value(std::string_view token) {
  if (token.size() >= 2 && token.front() == '<' && token.back() == '>') {
    return "<" + std::string(token) + ">";
  }
  return std::string(token);
}

// The h-card body render_contact_message() writes (CRLF line endings).
std::string render_body(const std::vector<std::string>& addresses) {
  const auto escaped = [](std::string_view text) {
    std::string result;
    for (const char c : text) {
      switch (c) {
        case '&':
          result += "&amp;";
          break;
        case '<':
          result += "&lt;";
          break;
        case '>':
          result += "&gt;";
          break;
        case '"':
          result += "&quot;";
          break;
        default:
          result += c;
      }
    }
    return result;
  };
  std::string body =
      "<!DOCTYPE html>\r\n"
      "<html><head><meta charset=\"utf-8\"><title>Contact</title></head><body>\r\n"
      "<div class=\"h-card\">\r\n";
  // p-name is mandatory; the token store knows no names, so the first
  // address stands in, as clients show an address without a name.
  body += "<p class=\"p-name\">" + escaped(addresses.empty() ? "" : addresses.front()) + "</p>\r\n";
  for (const std::string& address : addresses) {
    body += "<p>Email: <a class=\"u-email\" href=\"mailto:" + escaped(address) + "\">" +
            escaped(address) + "</a></p>\r\n";
  }
  body += "</div>\r\n</body></html>\r\n";
  return body;
}

std::string without_carriage_returns(std::string_view text) {
  std::string result;
  result.reserve(text.size());
  for (const char c : text) {
    if (c != '\r') result += c;
  }
  return result;
}

// A COI-From-Hash value as hexadecimal: the COI client specification's 64
// hexadecimal digits, or the same 32 octets in base64 as Dovecot's COI
// plugin writes them (rfcdraft Appendix E.9), unpadded or padded.
std::optional<std::string> from_hash_as_hex(std::string_view text) {
  std::string value = ascii_lowercase(text);
  if (value.size() == 64 && is_lower_hex(value)) return value;
  const auto padding = text.size() == 44 ? Base64Padding::required : Base64Padding::forbidden;
  if (const auto octets = decode_base64_32(text, padding)) return hex(*octets);
  return std::nullopt;
}

}  // namespace

std::string coi_from_hash_hex(std::string_view address) { return hex(coi_from_hash(address)); }

ContactParseResult parse_contact_message(std::string_view message) {
  ContactParseResult result;
  const std::vector<message::HeaderField> fields = message::parse_headers(message);
  const auto chat_content = message::find_header(fields, chat_content_field);
  if (!chat_content) {
    // Dovecot's COI plugin writes its contact messages without Chat-Content
    // (rfcdraft Appendix E.9). A message with COI-From-Hash and a token in a
    // COI-Token field is one all the same: nothing else writes those fields
    // (checked once the tokens are read, below).
    const bool has_token_field = message::find_header(fields, coi_token_in_field) ||
                                 message::find_header(fields, coi_token_out_field);
    if (!message::find_header(fields, coi_from_hash_field) || !has_token_field) {
      result.error = "no Chat-Content field: not a contact storage message";
      return result;
    }
  } else {
    // "contact", possibly with parameters after ';' as "profile" has.
    const std::string_view kind =
        trim(std::string_view(*chat_content)
                 .substr(0, std::min(chat_content->size(), chat_content->find(';'))));
    if (!same_name(kind, contact_content)) {
      result.error = "Chat-Content is " + quoted(kind) + ", not 'contact'";
      return result;
    }
  }

  ContactMessage contact;
  for (const message::HeaderField& field : fields) {
    if (same_name(field.name, coi_from_hash_field)) {
      auto value = from_hash_as_hex(trim(field.value));
      if (!value) {
        contact.problems.push_back("COI-From-Hash " + quoted(field.value) +
                                   " is neither 64 hexadecimal digits nor base64 of 32 octets "
                                   "(SHA3-256)");
        continue;
      }
      add_unique(contact.from_hashes, std::move(*value));
    } else if (same_name(field.name, coi_token_in_field) ||
               same_name(field.name, coi_token_out_field)) {
      auto& tokens =
          same_name(field.name, coi_token_in_field) ? contact.tokens_in : contact.tokens_out;
      const auto words = tokens_in_value(field.value);
      if (words.empty()) contact.problems.push_back("empty " + field.name + " field");
      for (const std::string_view word : words) add_unique(tokens, std::string(word));
    } else if (same_name(field.name, blocked_field)) {
      contact.blocked = true;
    }
  }
  if (contact.from_hashes.empty()) {
    result.error = "no valid COI-From-Hash field: the message names no contact";
    return result;
  }
  if (!chat_content && contact.tokens_in.empty() && contact.tokens_out.empty()) {
    // Without Chat-Content only its tokens make it a contact message.
    result.error = "no Chat-Content field: not a contact storage message";
    return result;
  }
  for (const std::string_view name : {"To", "From"}) {
    const auto value = message::find_header(fields, name);
    if (!value) continue;
    if (auto address = address_in_field(*value)) {
      contact.user = std::move(address);
      break;
    }
    contact.problems.push_back(std::string(name) + " " + quoted(*value) + " holds no address");
  }
  contact.addresses = addresses_in_body(body_of(message), contact.from_hashes);
  result.contact = std::move(contact);
  return result;
}

std::string render_contact_message(const ContactContent& content, std::int64_t now,
                                   std::string_view hostname) {
  std::vector<std::string> hashes;
  for (const std::string& address : content.addresses) {
    add_unique(hashes, coi_from_hash_hex(address));
  }
  for (const std::string& hash : content.other_from_hashes) add_unique(hashes, hash);

  // Unique per contact and content: a new version of a contact is a new
  // message (COI: "APPEND-ing a new one and expunging the old one").
  std::string identity = content.user;
  for (const auto* tokens : {&content.tokens_in, &content.tokens_out}) {
    for (const std::string& token : *tokens) identity += "\n" + token;
  }
  const std::string id_part = hex(sha3_256(identity)).substr(0, 16);
  const std::string contact_part = hashes.empty() ? "none" : hashes.front().substr(0, 16);

  std::string text;
  const auto field = [&text](std::string_view name, std::string_view value) {
    text.append(name).append(": ").append(value).append("\r\n");
  };
  field("From", "<" + content.user + ">");
  field("To", "<" + content.user + ">");
  field("Subject", "Contact");
  field("Date",
        message::rfc5322_date(std::chrono::system_clock::time_point(std::chrono::seconds(now))));
  field("Message-ID", "<coi-contact." + contact_part + "." + std::to_string(now) + "." + id_part +
                          "@" + std::string(hostname) + ">");
  field("MIME-Version", "1.0");
  field("Chat-Version", "1.0");
  field("Chat-Content", "contact");
  field("Content-Type", "text/html; charset=UTF-8");
  field("Content-Transfer-Encoding", "8bit");
  for (const std::string& hash : hashes) field(coi_from_hash_field, hash);
  for (const std::string& token : content.tokens_in) {
    field(coi_token_in_field, token_field_value(token));
  }
  for (const std::string& token : content.tokens_out) {
    field(coi_token_out_field, token_field_value(token));
  }
  text += "\r\n";
  text += render_body(content.addresses);
  return text;
}

std::string replace_contact_fields(std::string_view message,
                                   const std::vector<std::string>& from_hashes,
                                   const std::vector<std::string>& tokens_in,
                                   const std::vector<std::string>& tokens_out) {
  const std::size_t first_newline = message.find('\n');
  const std::string_view line_ending =
      first_newline == std::string_view::npos ||
              (first_newline > 0 && message[first_newline - 1] == '\r')
          ? "\r\n"
          : "\n";
  std::string fields;
  const auto field = [&](std::string_view name, std::string_view value) {
    fields.append(name).append(": ").append(value).append(line_ending);
  };
  for (const std::string& hash : from_hashes) field(coi_from_hash_field, hash);
  for (const std::string& token : tokens_in) field(coi_token_in_field, token_field_value(token));
  for (const std::string& token : tokens_out) field(coi_token_out_field, token_field_value(token));

  // The header section read line by line as parse_headers() reads it (it
  // ends at the first line empty but for one CR), so that exactly the
  // fields parse_contact_message() saw are dropped, with their
  // continuation lines. The new fields go at its end, where no line that
  // follows can be read as their continuation.
  const auto is_replaced = [](std::string_view line) {
    const std::size_t colon = line.find(':');
    if (colon == std::string_view::npos) return false;
    std::string_view name = line.substr(0, colon);
    while (!name.empty() && (name.back() == ' ' || name.back() == '\t')) name.remove_suffix(1);
    return same_name(name, coi_from_hash_field) || same_name(name, coi_token_in_field) ||
           same_name(name, coi_token_out_field);
  };
  std::string text;
  text.reserve(message.size() + fields.size());
  bool removing = false;  // inside a dropped field: its continuation lines go too
  while (!message.empty()) {
    const std::size_t newline = message.find('\n');
    const std::size_t length = newline == std::string_view::npos ? message.size() : newline + 1;
    std::string_view line = message.substr(0, newline == std::string_view::npos ? length : newline);
    if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
    if (line.empty()) break;  // the end of the header section
    if (line.front() != ' ' && line.front() != '\t') removing = is_replaced(line);
    if (!removing) text.append(message.substr(0, length));
    message.remove_prefix(length);
  }
  // Header lines only, the last one unterminated: end it first.
  if (message.empty() && !text.empty() && text.back() != '\n') text.append(line_ending);
  text += fields;
  text.append(message);
  return text;
}

bool is_plain_rendering(std::string_view message) {
  const ContactParseResult parsed = parse_contact_message(message);
  if (!parsed.contact) return false;
  for (const message::HeaderField& field : message::parse_headers(message)) {
    const bool ours =
        std::any_of(std::begin(rendered_field_names), std::end(rendered_field_names),
                    [&](std::string_view name) { return same_name(field.name, name); });
    if (!ours) return false;
  }
  // Compared without CRs: an IMAP server may store LF line endings.
  return without_carriage_returns(body_of(message)) ==
         without_carriage_returns(render_body(parsed.contact->addresses));
}

}  // namespace stokend::tokens
