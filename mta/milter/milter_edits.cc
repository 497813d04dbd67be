// Applying a milter's changes to the message; see milter_edits.h.
#include "mta/milter/milter_edits.h"

#include <algorithm>

#include "common/ascii.h"
#include "message/address.h"

namespace stokend::milter {
namespace {

// The message as header fields (each with its folded lines and CRLFs) and
// the rest: the empty line and the body, or nothing when there is none.
struct SplitMessage {
  std::vector<std::string> fields;
  std::string rest;
};

SplitMessage split(const std::string& message) {
  SplitMessage split;
  std::size_t at = 0;
  while (at < message.size()) {
    auto end = message.find("\r\n", at);
    end = end == std::string::npos ? message.size() : end + 2;
    const std::string_view line = std::string_view(message).substr(at, end - at);
    if (line == "\r\n") break;  // the end of the header section (RFC 5322 §2.1)
    if ((line[0] == ' ' || line[0] == '\t') && !split.fields.empty()) {
      split.fields.back() += line;
    } else {
      split.fields.emplace_back(line);
    }
    at = end;
  }
  split.rest = message.substr(at);
  return split;
}

std::string_view field_name(std::string_view field) {
  auto name = field.substr(0, field.find(':'));
  while (!name.empty() && (name.back() == ' ' || name.back() == '\t')) name.remove_suffix(1);
  return name;
}

// "Name: value\r\n" with the value's line breaks as CRLF and every
// continuation line starting with white space (RFC 5322 §2.2.3).
std::string make_field(std::string_view name, std::string_view value) {
  std::string field(name);
  field += ':';
  if (!value.starts_with(' ') && !value.starts_with('\t')) field += ' ';
  std::size_t at = 0;
  while (true) {
    auto end = value.find('\n', at);
    std::string_view line = value.substr(at, end == std::string_view::npos ? end : end - at);
    if (line.ends_with('\r')) line.remove_suffix(1);
    if (at != 0) {
      field += "\r\n";
      if (!line.starts_with(' ') && !line.starts_with('\t')) field += '\t';
    }
    field += line;
    if (end == std::string_view::npos) break;
    at = end + 1;
  }
  return field + "\r\n";
}

// A value may not carry a CR that does not start a line break, nor a NUL.
bool is_header_value(std::string_view value) {
  for (std::size_t i = 0; i < value.size(); ++i) {
    if (value[i] == '\0') return false;
    if (value[i] == '\r' && (i + 1 == value.size() || value[i + 1] != '\n')) return false;
  }
  return true;
}

bool same_address(std::string_view left, std::string_view right) {
  return equals_ignoring_case(left, right);
}

}  // namespace

HeaderSection read_header_section(const std::string& message) {
  HeaderSection section;
  SplitMessage parts = split(message);
  section.body_at = message.size() - parts.rest.size();
  if (parts.rest.starts_with("\r\n")) section.body_at += 2;
  for (const std::string& field : parts.fields) {
    const auto colon = field.find(':');
    if (colon == std::string::npos) continue;  // not a field: nothing to show
    std::string_view value = std::string_view(field).substr(colon + 1);
    if (value.starts_with(' ')) value.remove_prefix(1);
    if (value.ends_with("\r\n")) value.remove_suffix(2);
    std::string joined;
    for (std::size_t at = 0; at < value.size(); ++at) {
      if (value[at] == '\r' && at + 1 < value.size() && value[at + 1] == '\n') continue;
      joined += value[at];
    }
    section.fields.emplace_back(std::string(field_name(field)), std::move(joined));
  }
  return section;
}

bool is_header_name(std::string_view text) {
  return !text.empty() && std::all_of(text.begin(), text.end(),
                                      [](char c) { return c >= 33 && c <= 126 && c != ':'; });
}

std::optional<std::string> milter_address(std::string_view text, bool allow_null) {
  if (text.starts_with('<') && text.ends_with('>') && text.size() >= 2) {
    text = text.substr(1, text.size() - 2);
  }
  if (text.empty()) return allow_null ? std::optional<std::string>("") : std::nullopt;
  const auto mailbox = message::parse_mailbox(text, true);
  if (!mailbox) return std::nullopt;
  return mailbox->to_string();
}

void MessageEdits::add(Reply reply) {
  switch (reply.kind) {
    case Reply::Kind::replace_body:
      if (!body_) body_.emplace();
      *body_ += reply.value;
      break;
    case Reply::Kind::add_header:
    case Reply::Kind::insert_header:
    case Reply::Kind::change_header:
    case Reply::Kind::add_recipient:
    case Reply::Kind::delete_recipient:
    case Reply::Kind::change_sender:
      edits_.push_back(std::move(reply));
      break;
    default:
      break;
  }
}

std::optional<std::string> MessageEdits::apply(EditedMessage& target, std::size_t max_size) const {
  EditedMessage result = target;
  SplitMessage message = split(result.message);
  for (const Reply& edit : edits_) {
    switch (edit.kind) {
      case Reply::Kind::add_header:
      case Reply::Kind::insert_header:
      case Reply::Kind::change_header: {
        if (!is_header_name(edit.name)) return "header name '" + edit.name + "' is not valid";
        if (!is_header_value(edit.value)) return "header " + edit.name + " has a bad value";
        auto& fields = message.fields;
        if (edit.kind == Reply::Kind::add_header) {
          fields.push_back(make_field(edit.name, edit.value));
        } else if (edit.kind == Reply::Kind::insert_header) {
          const std::size_t at = std::min<std::size_t>(edit.index, fields.size());
          fields.insert(fields.begin() + static_cast<std::ptrdiff_t>(at),
                        make_field(edit.name, edit.value));
        } else {
          std::uint32_t seen = 0;
          auto found = std::find_if(fields.begin(), fields.end(), [&](const std::string& field) {
            return equals_ignoring_case(field_name(field), edit.name) && ++seen == edit.index;
          });
          if (found == fields.end()) {
            if (!edit.value.empty()) fields.push_back(make_field(edit.name, edit.value));
          } else if (edit.value.empty()) {
            fields.erase(found);
          } else {
            *found = make_field(edit.name, edit.value);
          }
        }
        break;
      }
      case Reply::Kind::add_recipient: {
        const auto address = milter_address(edit.value, false);
        if (!address) return "recipient to add '" + edit.value + "' is not an address";
        if (std::none_of(result.recipients.begin(), result.recipients.end(),
                         [&](const std::string& known) { return same_address(known, *address); })) {
          result.recipients.push_back(*address);
        }
        break;
      }
      case Reply::Kind::delete_recipient: {
        const auto address = milter_address(edit.value, false);
        if (!address) return "recipient to delete '" + edit.value + "' is not an address";
        std::erase_if(result.recipients,
                      [&](const std::string& known) { return same_address(known, *address); });
        break;
      }
      case Reply::Kind::change_sender: {
        const auto address = milter_address(edit.value, true);
        if (!address) return "new sender '" + edit.value + "' is not an address";
        result.sender = *address;
        break;
      }
      default:
        break;
    }
  }
  std::string rebuilt;
  for (const auto& field : message.fields) rebuilt += field;
  if (body_) {
    // The milter sends the body as it should be, CRLF line endings.
    rebuilt += "\r\n";
    rebuilt += *body_;
  } else {
    rebuilt += message.rest;
  }
  if (rebuilt.size() > max_size) {
    return "the changed message has " + std::to_string(rebuilt.size()) +
           " octets, over the limit of " + std::to_string(max_size);
  }
  result.message = std::move(rebuilt);
  target = std::move(result);
  return std::nullopt;
}

}  // namespace stokend::milter
