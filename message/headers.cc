// Reading the RFC 5322 header section, and chat detection.
//
// Tolerant by design: this reads mail from anyone, so a malformed line is
// skipped rather than refused, and nothing here throws or reads past the
// header section.
#include "message/headers.h"

#include <algorithm>
#include <cstddef>

#include "common/ascii.h"

namespace stokend::message {
namespace {

constexpr std::string_view chat_id_prefix = "chat$";

bool is_whitespace(char c) { return c == ' ' || c == '\t' || c == '\r' || c == '\n'; }

std::string_view trim(std::string_view text) {
  while (!text.empty() && is_whitespace(text.front())) text.remove_prefix(1);
  while (!text.empty() && is_whitespace(text.back())) text.remove_suffix(1);
  return text;
}

// RFC 5322 §2.2: a field name is one or more printable US-ASCII characters
// except colon (ftext, 33-57 and 59-126).
bool is_valid_field_name(std::string_view name) {
  return !name.empty() && std::all_of(name.begin(), name.end(), [](char c) {
    const auto byte = static_cast<unsigned char>(c);
    return byte >= 33 && byte <= 126 && c != ':';
  });
}

// Skips CFWS (RFC 5322 §3.2.2): whitespace and comments, which may nest and
// contain quoted-pairs.
std::string_view skip_comments_and_whitespace(std::string_view text) {
  while (!text.empty()) {
    if (is_whitespace(text.front())) {
      text.remove_prefix(1);
      continue;
    }
    if (text.front() != '(') break;
    int depth = 0;
    std::size_t position = 0;
    for (; position < text.size(); ++position) {
      const char c = text[position];
      if (c == '\\') {
        ++position;  // quoted-pair: the next character is literal
      } else if (c == '(') {
        ++depth;
      } else if (c == ')' && --depth == 0) {
        break;
      }
    }
    text.remove_prefix(std::min(position + 1, text.size()));
  }
  return text;
}

// The first msg-id of a Message-ID or References value (RFC 5322 §3.6.4),
// without its angle brackets. A value without brackets (malformed, but seen)
// yields its first word.
std::string_view first_message_id(std::string_view value) {
  value = skip_comments_and_whitespace(value);
  if (!value.empty() && value.front() == '<') {
    value.remove_prefix(1);
    return value.substr(0, value.find('>'));
  }
  const auto end = std::find_if(value.begin(), value.end(), is_whitespace);
  return value.substr(0, static_cast<std::size_t>(end - value.begin()));
}

bool is_chat_message_id(const std::optional<std::string>& value) {
  return value && starts_with_ignoring_case(first_message_id(*value), chat_id_prefix);
}

}  // namespace

std::vector<HeaderField> parse_headers(std::string_view message) {
  std::vector<HeaderField> fields;
  // Whether continuation lines belong to the last field (false after a
  // skipped malformed line, so its continuation is skipped too).
  bool continuing_field = false;

  while (!message.empty()) {
    const std::size_t newline = message.find('\n');
    std::string_view line = message.substr(0, newline);
    message.remove_prefix(newline == std::string_view::npos ? message.size() : newline + 1);
    if (!line.empty() && line.back() == '\r') line.remove_suffix(1);

    // RFC 5322 §2.1: the header section ends at the first empty line.
    if (line.empty()) break;

    // RFC 5322 §2.2.3: unfolding removes the line break before whitespace,
    // so a line starting with whitespace continues the previous field.
    if (line.front() == ' ' || line.front() == '\t') {
      if (continuing_field) fields.back().value.append(line);
      continue;
    }

    continuing_field = false;
    const std::size_t colon = line.find(':');
    if (colon == std::string_view::npos) continue;
    // RFC 5322 §4.5 (obsolete syntax) allows whitespace before the colon.
    std::string_view name = line.substr(0, colon);
    while (!name.empty() && (name.back() == ' ' || name.back() == '\t')) name.remove_suffix(1);
    if (!is_valid_field_name(name)) continue;

    fields.push_back(HeaderField{std::string(name), std::string(line.substr(colon + 1))});
    continuing_field = true;
  }

  for (HeaderField& field : fields) {
    const std::string_view trimmed = trim(field.value);
    if (trimmed.size() != field.value.size()) field.value = std::string(trimmed);
  }
  return fields;
}

std::string remove_header_fields(std::string_view message, std::string_view name) {
  std::string kept;
  std::string_view rest = message;
  bool removing = false;  // inside a removed field: its continuation lines go too
  bool removed_any = false;
  while (!rest.empty()) {
    const std::size_t newline = rest.find('\n');
    const std::size_t length = newline == std::string_view::npos ? rest.size() : newline + 1;
    std::string_view line = rest.substr(0, length);
    std::string_view content = line;
    while (!content.empty() && (content.back() == '\n' || content.back() == '\r')) {
      content.remove_suffix(1);
    }
    if (content.empty()) break;  // the end of the header section: the rest is kept as is
    if (content.front() == ' ' || content.front() == '\t') {
      if (!removing) kept.append(line);
    } else {
      const std::size_t colon = content.find(':');
      std::string_view field_name = content.substr(0, colon);
      while (!field_name.empty() && (field_name.back() == ' ' || field_name.back() == '\t')) {
        field_name.remove_suffix(1);
      }
      removing = colon != std::string_view::npos && equals_ignoring_case(field_name, name);
      if (removing) {
        removed_any = true;
      } else {
        kept.append(line);
      }
    }
    rest.remove_prefix(length);
  }
  if (!removed_any) return std::string(message);
  kept.append(rest);
  return kept;
}

std::optional<std::string> find_header(const std::vector<HeaderField>& fields,
                                       std::string_view name) {
  for (const HeaderField& field : fields) {
    if (equals_ignoring_case(field.name, name)) return field.value;
  }
  return std::nullopt;
}

bool is_chat_message(const std::vector<HeaderField>& fields) {
  // DESIGN "Chat detection": the COI and Delta Chat marks of chat mail.
  if (find_header(fields, "Chat-Version")) return true;
  if (is_chat_message_id(find_header(fields, "Message-ID"))) return true;
  // Only the first References id counts: it names the thread's first
  // message, so a reply in a chat thread is chat mail even from a client
  // that does not mark its own Message-ID.
  return is_chat_message_id(find_header(fields, "References"));
}

bool is_chat_message(std::string_view message) {
  return is_chat_message(parse_headers(header_section(message)));
}

std::string_view header_section(std::string_view message) {
  message = message.substr(0, max_header_section_scanned);
  return message.substr(0, message.find("\r\n\r\n"));
}

std::size_t count_header_fields(std::string_view message, std::string_view name) {
  std::size_t count = 0;
  for (const HeaderField& field : parse_headers(header_section(message))) {
    if (equals_ignoring_case(field.name, name)) ++count;
  }
  return count;
}

std::vector<std::string> find_all_headers(const std::vector<HeaderField>& fields,
                                          std::string_view name) {
  std::vector<std::string> values;
  for (const HeaderField& field : fields) {
    if (equals_ignoring_case(field.name, name)) values.push_back(field.value);
  }
  return values;
}

}  // namespace stokend::message
