// The core of the configuration reader: the value helpers, the map walker
// that reports unknown, duplicate and missing keys, and the parsers of
// single values. See config_reader.h.
#include "mta/config/config_reader.h"

#include <arpa/inet.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <charconv>
#include <cstdio>
#include <limits>
#include <memory>
#include <set>
#include <system_error>

#include "mta/config/pem_checks.h"

namespace stokend::config_reading {
namespace {

std::size_t edit_distance(std::string_view from, std::string_view to) {
  std::vector<std::size_t> previous(to.size() + 1);
  std::vector<std::size_t> current(to.size() + 1);
  for (std::size_t j = 0; j <= to.size(); ++j) previous[j] = j;
  for (std::size_t i = 1; i <= from.size(); ++i) {
    current[0] = i;
    for (std::size_t j = 1; j <= to.size(); ++j) {
      const std::size_t substitution = previous[j - 1] + (from[i - 1] == to[j - 1] ? 0 : 1);
      current[j] = std::min({previous[j] + 1, current[j - 1] + 1, substitution});
    }
    std::swap(previous, current);
  }
  return previous[to.size()];
}

// Splits a number with an optional unit suffix, e.g. "35M" or "500ms", into
// its leading digits and the rest. The digits are empty when text does not
// start with one.
std::pair<std::string_view, std::string_view> split_number_and_unit(std::string_view text) {
  const auto first_non_digit =
      std::find_if(text.begin(), text.end(), [](char c) { return c < '0' || c > '9'; });
  const auto digits = static_cast<std::size_t>(first_non_digit - text.begin());
  return {text.substr(0, digits), text.substr(digits)};
}

}  // namespace

// What a node holds, for "expected X, got Y" messages.
std::string describe(const YAML::Node& node) {
  switch (node.Type()) {
    case YAML::NodeType::Null:
      return "nothing";
    case YAML::NodeType::Sequence:
      return "a list";
    case YAML::NodeType::Map:
      return "a map";
    case YAML::NodeType::Scalar:
      return "'" + node.Scalar() + "'";
    case YAML::NodeType::Undefined:
      break;
  }
  return "an undefined value";
}

// A duration as the config file would spell it: "16s", "500ms".
std::string format_duration(std::chrono::milliseconds duration) {
  const auto milliseconds = duration.count();
  if (milliseconds % 1000 != 0) return std::to_string(milliseconds) + "ms";
  return std::to_string(milliseconds / 1000) + "s";
}

// The canonical text of an IP literal, so "::1" and "0::1" count as the same
// listener address; nullopt when text is not an IPv4 or IPv6 literal.
std::optional<std::string> canonical_ip_address(const std::string& text) {
  std::array<unsigned char, 16> binary{};
  std::array<char, INET6_ADDRSTRLEN> printed{};
  for (int family : {AF_INET, AF_INET6}) {
    if (::inet_pton(family, text.c_str(), binary.data()) == 1 &&
        ::inet_ntop(family, binary.data(), printed.data(), printed.size()) != nullptr) {
      return family == AF_INET6 ? "[" + std::string(printed.data()) + "]"
                                : std::string(printed.data());
    }
  }
  return std::nullopt;
}

// Why path cannot be read, or nullopt when it can.
std::optional<std::string> unreadable_reason(const std::filesystem::path& path) {
  std::error_code status_error;
  if (std::filesystem::is_directory(path, status_error)) return "it is a folder";
  struct FileCloser {
    void operator()(std::FILE* file) const { std::fclose(file); }
  };
  errno = 0;
  std::unique_ptr<std::FILE, FileCloser> file(std::fopen(path.c_str(), "rb"));
  if (!file) return std::system_category().message(errno);
  return std::nullopt;
}

void ConfigReader::error_at(const YAML::Mark& mark, std::string message) {
  ConfigError error{file_name_, 0, 0, std::move(message)};
  if (!mark.is_null()) {
    error.line = mark.line + 1;
    error.column = mark.column + 1;
  }
  errors_.push_back(std::move(error));
}

void ConfigReader::read_map(const YAML::Node& map, const std::string& section,
                            const YAML::Mark& where, const FieldReaders& readers,
                            const std::vector<std::string_view>& required) {
  if (!map.IsNull() && !map.IsMap()) {
    error_at(where, section.empty()
                        ? "expected a map of settings at the top level, got " + describe(map)
                        : section + ": expected a map of settings, got " + describe(map));
    return;
  }
  const std::string in_section = section.empty() ? std::string() : " in " + section;
  std::set<std::string> seen;
  if (map.IsMap()) {
    for (const auto& entry : map) {
      const YAML::Node& key = entry.first;
      if (!key.IsScalar()) {
        error_at(key.Mark(), "expected a setting name" + in_section + ", got " + describe(key));
        continue;
      }
      const std::string& name = key.Scalar();
      if (!seen.insert(name).second) {
        error_at(key.Mark(), "duplicate key '" + name + "'" + in_section);
        continue;
      }
      const auto reader = std::find_if(readers.begin(), readers.end(),
                                       [&](const auto& known) { return known.first == name; });
      if (reader == readers.end()) {
        std::string message = "unknown key '" + name + "'" + in_section;
        for (const auto& [known, unused] : readers) {
          if (edit_distance(name, known) <= 2) {
            message += " (did you mean '" + std::string(known) + "'?)";
            break;
          }
        }
        error_at(key.Mark(), std::move(message));
        continue;
      }
      reader->second(
          Field{section.empty() ? name : section + "." + name, entry.second, key.Mark()});
    }
  }
  for (std::string_view name : required) {
    if (!seen.contains(std::string(name))) {
      error_at(where, "missing required key '" + std::string(name) + "'" + in_section);
    }
  }
}

std::optional<std::string> ConfigReader::read_string(const Field& field) {
  if (field.value.IsNull()) return std::string();
  if (!field.value.IsScalar()) {
    error_at(field.value_mark(),
             field.setting + ": expected a string, got " + describe(field.value));
    return std::nullopt;
  }
  return field.value.Scalar();
}

std::optional<std::filesystem::path> ConfigReader::read_path(const Field& field,
                                                             bool may_be_empty) {
  const auto text = read_string(field);
  if (!text) return std::nullopt;
  if (text->empty() && !may_be_empty) {
    error_at(field.value_mark(), field.setting + ": must not be empty");
    return std::nullopt;
  }
  return std::filesystem::path(*text);
}

std::optional<std::uint64_t> ConfigReader::read_positive_integer(const Field& field) {
  const std::string expected = field.setting + ": expected a positive integer, got ";
  if (!field.value.IsScalar()) {
    error_at(field.value_mark(), expected + describe(field.value));
    return std::nullopt;
  }
  const std::string& text = field.value.Scalar();
  std::uint64_t number = 0;
  const auto [end, status] = std::from_chars(text.data(), text.data() + text.size(), number);
  if (status == std::errc::result_out_of_range) {
    error_at(field.value_mark(), field.setting + ": " + text + " is too large");
    return std::nullopt;
  }
  if (text.empty() || status != std::errc() || end != text.data() + text.size() || number == 0) {
    error_at(field.value_mark(), expected + describe(field.value));
    return std::nullopt;
  }
  return number;
}

std::optional<std::size_t> ConfigReader::read_size(const Field& field) {
  const std::string expected =
      field.setting + ": expected a size in bytes (a number, optionally with K, M or G), got ";
  if (!field.value.IsScalar()) {
    error_at(field.value_mark(), expected + describe(field.value));
    return std::nullopt;
  }
  const std::string& text = field.value.Scalar();
  const auto [digits, unit] = split_number_and_unit(text);
  static const std::map<std::string_view, std::uint64_t> multipliers = {
      {"", 1},           {"K", 1ULL << 10}, {"k", 1ULL << 10}, {"M", 1ULL << 20},
      {"m", 1ULL << 20}, {"G", 1ULL << 30}, {"g", 1ULL << 30}};
  const auto multiplier = multipliers.find(unit);
  std::uint64_t number = 0;
  if (digits.empty() || multiplier == multipliers.end() ||
      std::from_chars(digits.data(), digits.data() + digits.size(), number).ec != std::errc() ||
      number == 0) {
    error_at(field.value_mark(), expected + describe(field.value));
    return std::nullopt;
  }
  if (number > std::numeric_limits<std::size_t>::max() / multiplier->second) {
    error_at(field.value_mark(), field.setting + ": " + text + " is too large");
    return std::nullopt;
  }
  return static_cast<std::size_t>(number * multiplier->second);
}

std::optional<std::chrono::milliseconds> ConfigReader::read_duration(const Field& field,
                                                                     bool may_be_zero) {
  const std::string expected = field.setting +
                               ": expected a duration (seconds, or a number with ms, s, m, h "
                               "or d, e.g. 30s)" +
                               (may_be_zero ? "" : " greater than zero") + ", got ";
  if (!field.value.IsScalar()) {
    error_at(field.value_mark(), expected + describe(field.value));
    return std::nullopt;
  }
  const std::string& text = field.value.Scalar();
  const auto [digits, unit] = split_number_and_unit(text);
  // A bare number is seconds, like the defaults in defaults.h.
  static const std::map<std::string_view, std::int64_t> milliseconds_per_unit = {
      {"", 1000},           {"ms", 1}, {"s", 1000}, {"m", 60LL * 1000}, {"h", 3600LL * 1000},
      {"d", 86400LL * 1000}};
  const auto multiplier = milliseconds_per_unit.find(unit);
  std::int64_t number = 0;
  if (digits.empty() || multiplier == milliseconds_per_unit.end() ||
      std::from_chars(digits.data(), digits.data() + digits.size(), number).ec != std::errc() ||
      (number == 0 && !may_be_zero)) {
    error_at(field.value_mark(), expected + describe(field.value));
    return std::nullopt;
  }
  if (number > std::numeric_limits<std::int64_t>::max() / multiplier->second) {
    error_at(field.value_mark(), field.setting + ": " + text + " is too large");
    return std::nullopt;
  }
  return std::chrono::milliseconds(number * multiplier->second);
}

std::optional<bool> ConfigReader::read_boolean(const Field& field) {
  bool value = false;
  if (!field.value.IsScalar() || !YAML::convert<bool>::decode(field.value, value)) {
    error_at(field.value_mark(),
             field.setting + ": expected true or false, got " + describe(field.value));
    return std::nullopt;
  }
  return value;
}

FieldReader ConfigReader::duration_into(std::chrono::milliseconds& target, bool may_be_zero) {
  return [this, &target, may_be_zero](const Field& field) {
    if (const auto value = read_duration(field, may_be_zero)) target = *value;
  };
}

FieldReader ConfigReader::boolean_into(bool& target) {
  return [this, &target](const Field& field) {
    if (const auto value = read_boolean(field)) target = *value;
  };
}

std::optional<std::uint16_t> ConfigReader::read_port(const Field& field) {
  const auto port = read_positive_integer(field);
  if (!port) return std::nullopt;
  if (*port > 65535) {
    error_at(field.value_mark(),
             field.setting + ": port must be 1-65535, got " + std::to_string(*port));
    return std::nullopt;
  }
  return static_cast<std::uint16_t>(*port);
}

std::optional<std::filesystem::path> ConfigReader::read_ca_file(const Field& field) {
  const auto path = read_readable_file(field);
  if (!path) return std::nullopt;
  if (const auto problem = ca_file_problem(*path)) {
    error_at(field.value_mark(), field.setting + ": " + *problem);
    return std::nullopt;
  }
  return path;
}

std::optional<std::filesystem::path> ConfigReader::read_readable_file(const Field& field) {
  const auto path = read_path(field, true);
  if (!path || path->empty()) return std::nullopt;
  if (const auto reason = unreadable_reason(*path)) {
    error_at(field.value_mark(),
             field.setting + ": cannot read '" + path->string() + "': " + *reason);
    return std::nullopt;
  }
  return path;
}

}  // namespace stokend::config_reading
