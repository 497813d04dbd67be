// Damage report lines: see damage_report.h.
#include "queue/damage_report.h"

#include <algorithm>
#include <array>
#include <charconv>
#include <utility>

namespace stokend::queue {
namespace {

constexpr std::array<std::pair<DamageOutcome, std::string_view>, 8> outcome_names = {{
    {DamageOutcome::lost, "lost"},
    {DamageOutcome::recovered, "recovered"},
    {DamageOutcome::removed, "removed"},
    {DamageOutcome::earlier_state, "earlier-state"},
    {DamageOutcome::removal_lost, "removal-lost"},
    {DamageOutcome::not_needed, "not-needed"},
    {DamageOutcome::header, "header"},
    {DamageOutcome::unreadable, "unreadable"},
}};

constexpr std::array<std::string_view, 5> record_names = {"message", "state", "removal", "header",
                                                          "unknown"};

constexpr std::string_view hex_digits = "0123456789ABCDEF";

std::string escape(std::string_view value) {
  std::string escaped;
  for (char c : value) {
    const auto byte = static_cast<unsigned char>(c);
    if (byte < '!' || byte > '~' || c == '%' || c == ',' || c == '=') {
      escaped.push_back('%');
      escaped.push_back(hex_digits[byte >> 4]);
      escaped.push_back(hex_digits[byte & 0xf]);
    } else {
      escaped.push_back(c);
    }
  }
  return escaped;
}

int hex_value(char c) {
  const std::size_t found = hex_digits.find(c);
  return found == std::string_view::npos ? -1 : static_cast<int>(found);
}

// The inverse of escape(); nothing for text escape() would not write.
std::optional<std::string> unescape(std::string_view value) {
  std::string text;
  for (std::size_t i = 0; i < value.size(); ++i) {
    const char c = value[i];
    if (c != '%') {
      if (c < '!' || c > '~' || c == ',' || c == '=') return std::nullopt;
      text.push_back(c);
      continue;
    }
    if (value.size() - i < 3) return std::nullopt;
    const int high = hex_value(value[i + 1]);
    const int low = hex_value(value[i + 2]);
    if (high < 0 || low < 0) return std::nullopt;
    const auto byte = static_cast<unsigned char>(high << 4 | low);
    if (byte >= '!' && byte <= '~' && byte != '%' && byte != ',' && byte != '=') {
      return std::nullopt;  // escaped without need: not what escape() writes
    }
    text.push_back(static_cast<char>(byte));
    i += 2;
  }
  return text;
}

std::optional<std::uint64_t> parse_number(std::string_view text) {
  std::uint64_t value = 0;
  if (text.empty() || (text.size() > 1 && text[0] == '0')) return std::nullopt;
  const auto [end, error] = std::from_chars(text.data(), text.data() + text.size(), value);
  if (error != std::errc() || end != text.data() + text.size()) return std::nullopt;
  return value;
}

// Splits "name=value" fields off a line, one at a time, in order.
class FieldCursor {
 public:
  explicit FieldCursor(std::string_view line) : rest_(line) {}
  // The value of the next field if it is called name (and moves past it).
  std::optional<std::string_view> take(std::string_view name) {
    if (rest_.empty()) return std::nullopt;
    const std::size_t space = rest_.find(' ');
    const std::string_view field = rest_.substr(0, space);
    if (!field.starts_with(name) || field.size() <= name.size() || field[name.size()] != '=') {
      return std::nullopt;
    }
    if (space == std::string_view::npos) {
      rest_ = {};
    } else {
      rest_.remove_prefix(space + 1);
      if (rest_.empty()) trailing_space_ = true;
    }
    return field.substr(name.size() + 1);
  }
  bool done() const { return rest_.empty() && !trailing_space_; }

 private:
  std::string_view rest_;
  bool trailing_space_ = false;
};

}  // namespace

std::string_view outcome_name(DamageOutcome outcome) {
  for (const auto& [known, name] : outcome_names) {
    if (known == outcome) return name;
  }
  return "unreadable";
}

std::string format_damage_line(const DamagedRecord& damaged) {
  std::string line = "segment=" + escape(damaged.segment) + " file=" + escape(damaged.file) +
                     " offset=" + std::to_string(damaged.offset) +
                     " length=" + std::to_string(damaged.length) + " record=" + damaged.record;
  if (!damaged.id.empty()) line += " id=" + escape(damaged.id);
  if (damaged.sender) line += " sender=" + escape(*damaged.sender);
  if (!damaged.recipients.empty()) {
    line += " recipients=";
    for (std::size_t i = 0; i < damaged.recipients.size(); ++i) {
      if (i > 0) line += ',';
      line += escape(damaged.recipients[i]);
    }
  }
  if (damaged.recipients_incomplete) line += " recipients_incomplete=yes";
  line += " outcome=";
  line += outcome_name(damaged.outcome);
  return line;
}

std::optional<DamagedRecord> parse_damage_line(std::string_view line) {
  DamagedRecord damaged;
  FieldCursor fields(line);
  const auto segment = fields.take("segment");
  const auto file = segment ? fields.take("file") : std::nullopt;
  if (!segment || !file) return std::nullopt;
  auto segment_name = unescape(*segment);
  auto file_name = unescape(*file);
  if (!segment_name || !file_name) return std::nullopt;
  damaged.segment = std::move(*segment_name);
  damaged.file = std::move(*file_name);
  const auto offset = fields.take("offset");
  const auto length = offset ? fields.take("length") : std::nullopt;
  const auto offset_value = offset ? parse_number(*offset) : std::nullopt;
  const auto length_value = length ? parse_number(*length) : std::nullopt;
  if (!offset_value || !length_value) return std::nullopt;
  damaged.offset = *offset_value;
  damaged.length = *length_value;
  const auto record = fields.take("record");
  if (!record ||
      std::find(record_names.begin(), record_names.end(), *record) == record_names.end()) {
    return std::nullopt;
  }
  damaged.record = std::string(*record);
  if (const auto id = fields.take("id")) {
    auto text = unescape(*id);
    if (!text || text->empty()) return std::nullopt;
    damaged.id = std::move(*text);
  }
  if (const auto sender = fields.take("sender")) {
    damaged.sender = unescape(*sender);
    if (!damaged.sender) return std::nullopt;
  }
  if (const auto recipients = fields.take("recipients")) {
    std::string_view rest = *recipients;
    for (;;) {
      const std::size_t comma = std::min(rest.find(','), rest.size());
      auto recipient = unescape(rest.substr(0, comma));
      if (!recipient) return std::nullopt;
      damaged.recipients.push_back(std::move(*recipient));
      if (comma == rest.size()) break;
      rest.remove_prefix(comma + 1);
    }
  }
  if (const auto incomplete = fields.take("recipients_incomplete")) {
    if (*incomplete != "yes") return std::nullopt;
    damaged.recipients_incomplete = true;
  }
  const auto outcome = fields.take("outcome");
  if (!outcome || !fields.done()) return std::nullopt;
  const auto known = std::find_if(outcome_names.begin(), outcome_names.end(),
                                  [&](const auto& entry) { return entry.second == *outcome; });
  if (known == outcome_names.end()) return std::nullopt;
  damaged.outcome = known->first;
  return damaged;
}

std::string describe(const DamagedRecord& damaged) {
  std::string text = damaged.record == "unknown" ? "unreadable bytes" : damaged.record + " record";
  if (!damaged.id.empty()) text += " of message " + escape(damaged.id);
  if (damaged.sender) text += " from <" + escape(*damaged.sender) + ">";
  if (!damaged.recipients.empty()) {
    text += " to ";
    for (std::size_t i = 0; i < damaged.recipients.size(); ++i) {
      if (i > 0) text += ", ";
      text += "<" + escape(damaged.recipients[i]) + ">";
    }
    if (damaged.recipients_incomplete) text += " and more";
  }
  text += " at offset " + std::to_string(damaged.offset) + " of " + escape(damaged.segment) + " (" +
          std::to_string(damaged.length) + " bytes): ";
  text += outcome_name(damaged.outcome);
  return text;
}

}  // namespace stokend::queue
