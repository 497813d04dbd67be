// Loading stokend.yaml into a Config: parse, check every value, collect every error.
//
// Contract (config.h): load_config() reports every problem in the file, each
// at the FILE:LINE:COL of the offending key or value, so an operator fixes
// them all in one pass; a Config is returned only when there are none. Keys
// that are absent keep the defaults of defaults.h. The one exception to
// "every error" is a YAML syntax error: the parser cannot go on after it, so
// it is reported alone.
#include "mta/config.h"

#include <arpa/inet.h>
#include <unistd.h>
#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <charconv>
#include <cstdio>
#include <fstream>
#include <functional>
#include <limits>
#include <map>
#include <memory>
#include <set>
#include <sstream>
#include <system_error>
#include <utility>

namespace stokend {
namespace {

constexpr std::array log_levels = {"trace", "debug", "info", "warn", "error", "critical", "off"};

// Upper bound on worker_threads: more is certainly a typo, and each thread
// may hold a password hash's 64 MiB of memory.
constexpr std::uint64_t max_worker_threads = 1024;

std::string to_lower(std::string_view text) {
  std::string lowered(text);
  std::transform(lowered.begin(), lowered.end(), lowered.begin(), [](unsigned char c) {
    return static_cast<char>(c >= 'A' && c <= 'Z' ? c - 'A' + 'a' : c);
  });
  return lowered;
}

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

// A domain name as it may appear in EHLO or after '@': dot-separated labels
// of letters, digits and hyphens, no label empty or longer than 63 octets.
bool is_domain_name(std::string_view name) {
  if (name.empty() || name.size() > 253) return false;
  std::size_t label_length = 0;
  for (std::size_t i = 0; i < name.size(); ++i) {
    const char c = name[i];
    if (c == '.') {
      if (label_length == 0) return false;
      label_length = 0;
      continue;
    }
    const bool allowed =
        (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-';
    if (!allowed || ++label_length > 63) return false;
  }
  return label_length > 0;
}

// A whole decimal number with no sign, spaces or other characters; nullopt
// otherwise or when it does not fit.
std::optional<std::uint64_t> parse_decimal(std::string_view text) {
  std::uint64_t number = 0;
  const auto [end, status] = std::from_chars(text.data(), text.data() + text.size(), number);
  if (text.empty() || status != std::errc() || end != text.data() + text.size()) {
    return std::nullopt;
  }
  return number;
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

// One key of a map being read, with everything needed to report about it.
struct Field {
  std::string setting;  // "limits.max_recipients": how messages name it
  YAML::Node value;
  YAML::Mark key_mark;

  // A null value (`key:` with nothing after it) carries the position of
  // whatever follows it in the file, so point at the key instead.
  YAML::Mark value_mark() const { return value.IsNull() ? key_mark : value.Mark(); }
};

using FieldReader = std::function<void(const Field&)>;
using FieldReaders = std::vector<std::pair<std::string_view, FieldReader>>;

// Reads one file's YAML into a Config, accumulating errors instead of throwing.
class ConfigReader {
 public:
  explicit ConfigReader(std::string file_name) : file_name_(std::move(file_name)) {}

  void read_document(const YAML::Node& root, Config& config);
  std::vector<ConfigError> take_errors() { return std::move(errors_); }

 private:
  void error_at(const YAML::Mark& mark, std::string message);

  // Calls the reader of each key present in map and reports unknown,
  // duplicate and (listed in required) missing keys. A null map counts as
  // empty, so `limits:` with nothing under it keeps every default.
  void read_map(const YAML::Node& map, const std::string& section, const YAML::Mark& where,
                const FieldReaders& readers, const std::vector<std::string_view>& required = {});

  std::optional<std::string> read_string(const Field& field);
  std::optional<std::filesystem::path> read_path(const Field& field, bool may_be_empty);
  std::optional<std::uint64_t> read_positive_integer(const Field& field);
  std::optional<std::size_t> read_size(const Field& field);
  std::optional<std::chrono::milliseconds> read_duration(const Field& field, bool may_be_zero);
  std::optional<bool> read_boolean(const Field& field);
  // One of a fixed set of words, e.g. tls: none | starttls | implicit; an
  // unknown word is "unknown WHAT 'x' (expected a, b or c)".
  template <class Value>
  std::optional<Value> read_choice(
      const Field& field, std::string_view what,
      std::initializer_list<std::pair<std::string_view, Value>> choices);

  // Readers that store a setting's value into target (read_map entries).
  FieldReader duration_into(std::chrono::milliseconds& target, bool may_be_zero = false);
  FieldReader boolean_into(bool& target);

  void read_hostname(const Field& field, Config& config);
  void read_local_domains(const Field& field, Config& config);
  void read_listeners(const Field& field, Config& config);
  void read_listener(const YAML::Node& node, const std::string& setting, Config& config);
  void read_tls(const Field& field, TlsConfig& tls);
  void read_limits(const Field& field, LimitsConfig& limits);
  void read_timeouts(const Field& field, TimeoutsConfig& timeouts);
  void read_log_level(const Field& field, Config& config);
  void read_queue(const Field& field, QueueConfig& queue);
  void read_dns(const Field& field, DnsConfig& dns);
  // A map of domain (or "*") to a value: checks the map and its keys, then
  // hands each entry to read_entry.
  void read_domain_map(const Field& field, std::string_view what,
                       const std::function<void(const std::string& domain, const Field& value_field,
                                                const YAML::Mark& key_mark)>& read_entry);
  void read_routes(const Field& field, Config& config);
  void read_tls_policies(const Field& field, Config& config);
  void read_tokens(const Field& field, TokenConfig& tokens);
  void read_fast_lane(const Field& field, FastLaneConfig& fast_lane);
  void read_recipient_probe(const Field& field, Config& config);
  void check_recipient_probe_domains(Config& config);
  std::vector<YAML::Mark> probe_domain_marks_;
  std::optional<std::uint16_t> read_port(const Field& field);
  // A PEM file the daemon will read later: checked now, so a typo stops the
  // daemon instead of deferring mail. Empty: nothing to check.
  std::optional<std::filesystem::path> read_readable_file(const Field& field);

  std::string file_name_;
  std::vector<ConfigError> errors_;
  // canonical "address:port" → line of the listener that defined it first
  std::map<std::string, int> listener_lines_;
};

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

template <class Value>
std::optional<Value> ConfigReader::read_choice(
    const Field& field, std::string_view what,
    std::initializer_list<std::pair<std::string_view, Value>> choices) {
  const auto word = read_string(field);
  if (!word) return std::nullopt;
  std::string expected;
  std::size_t index = 0;
  for (const auto& [name, value] : choices) {
    if (*word == name) return value;
    expected += (index == 0 ? "" : index + 1 == choices.size() ? " or " : ", ") + std::string(name);
    ++index;
  }
  error_at(field.value_mark(), field.setting + ": unknown " + std::string(what) + " '" + *word +
                                   "' (expected " + expected + ")");
  return std::nullopt;
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

void ConfigReader::read_hostname(const Field& field, Config& config) {
  const auto name = read_string(field);
  if (!name) return;
  if (!name->empty() && !is_domain_name(*name)) {
    error_at(field.value_mark(), field.setting + ": '" + *name + "' is not a valid host name");
    return;
  }
  config.hostname = *name;
}

void ConfigReader::read_local_domains(const Field& field, Config& config) {
  if (!field.value.IsSequence()) {
    error_at(field.value_mark(),
             field.setting + ": expected a list of domains, got " + describe(field.value));
    return;
  }
  if (field.value.size() == 0) {
    error_at(field.value_mark(), field.setting + ": at least one local domain is required");
    return;
  }
  for (std::size_t index = 0; index < field.value.size(); ++index) {
    const YAML::Node domain_node = field.value[index];
    const std::string setting = field.setting + "[" + std::to_string(index) + "]";
    if (!domain_node.IsScalar()) {
      error_at(domain_node.Mark(), setting + ": expected a domain, got " + describe(domain_node));
      continue;
    }
    const std::string domain = to_lower(domain_node.Scalar());
    if (!is_domain_name(domain)) {
      error_at(domain_node.Mark(),
               setting + ": '" + domain_node.Scalar() + "' is not a valid domain name");
      continue;
    }
    if (config.is_local_domain(domain)) {
      error_at(domain_node.Mark(), setting + ": '" + domain + "' is listed twice");
      continue;
    }
    config.local_domains.push_back(domain);
  }
}

void ConfigReader::read_listeners(const Field& field, Config& config) {
  if (!field.value.IsSequence()) {
    error_at(field.value_mark(),
             field.setting + ": expected a list of listeners, got " + describe(field.value));
    return;
  }
  if (field.value.size() == 0) {
    error_at(field.value_mark(), field.setting + ": at least one listener is required");
    return;
  }
  for (std::size_t index = 0; index < field.value.size(); ++index) {
    read_listener(field.value[index], field.setting + "[" + std::to_string(index) + "]", config);
  }
}

void ConfigReader::read_listener(const YAML::Node& node, const std::string& setting,
                                 Config& config) {
  ListenerConfig listener;
  std::optional<std::string> canonical_address = canonical_ip_address(listener.address);
  const std::size_t errors_before = errors_.size();
  read_map(node, setting, node.Mark(),
           {{"role",
             [&](const Field& field) {
               if (const auto role = read_choice<Role>(
                       field, "role", {{"mx", Role::mx}, {"submission", Role::submission}})) {
                 listener.role = *role;
               }
             }},
            {"address",
             [&](const Field& field) {
               const auto address = read_string(field);
               if (!address) return;
               canonical_address = canonical_ip_address(*address);
               if (!canonical_address) {
                 error_at(field.value_mark(),
                          field.setting + ": '" + *address + "' is not an IPv4 or IPv6 address");
                 return;
               }
               listener.address = *address;
             }},
            {"port",
             [&](const Field& field) {
               const auto port =
                   field.value.IsScalar() ? parse_decimal(field.value.Scalar()) : std::nullopt;
               if (!port || *port < 1 || *port > 65535) {
                 error_at(field.value_mark(), field.setting +
                                                  ": expected a port number 1-65535, got " +
                                                  describe(field.value));
                 return;
               }
               listener.port = static_cast<std::uint16_t>(*port);
             }},
            {"tls",
             [&](const Field& field) {
               if (const auto mode = read_choice<TlsMode>(field, "tls mode",
                                                          {{"none", TlsMode::none},
                                                           {"starttls", TlsMode::starttls},
                                                           {"implicit", TlsMode::implicit}})) {
                 listener.tls = *mode;
               }
             }}},
           {"role", "port"});
  // A listener with any error of its own is not checked for duplicates: its
  // address or port may not be what the operator meant.
  if (errors_.size() != errors_before || !canonical_address) return;

  const std::string endpoint = *canonical_address + ":" + std::to_string(listener.port);
  const auto [first, inserted] = listener_lines_.emplace(endpoint, node.Mark().line + 1);
  if (!inserted) {
    error_at(node.Mark(), setting + ": duplicate listener " + endpoint +
                              " (already defined at line " + std::to_string(first->second) + ")");
    return;
  }
  config.listeners.push_back(listener);
}

void ConfigReader::read_tls(const Field& field, TlsConfig& tls) {
  std::optional<YAML::Mark> certificate_mark;
  std::optional<YAML::Mark> private_key_mark;
  auto read_existing_file = [&](const Field& key_field, std::filesystem::path& target,
                                std::optional<YAML::Mark>& mark) {
    const auto path = read_path(key_field, true);
    if (!path || path->empty()) return;
    target = *path;
    mark = key_field.value_mark();
    if (const auto reason = unreadable_reason(*path)) {
      error_at(*mark, key_field.setting + ": cannot read '" + path->string() + "': " + *reason);
    }
  };
  read_map(field.value, field.setting, field.value_mark(),
           {{"certificate",
             [&](const Field& key_field) {
               read_existing_file(key_field, tls.certificate, certificate_mark);
             }},
            {"private_key",
             [&](const Field& key_field) {
               read_existing_file(key_field, tls.private_key, private_key_mark);
             }},
            {"generated_directory", [&](const Field& key_field) {
               if (const auto path = read_path(key_field, false)) tls.generated_directory = *path;
             }}});
  if (certificate_mark.has_value() != private_key_mark.has_value()) {
    const bool key_missing = certificate_mark.has_value();
    error_at(key_missing ? *certificate_mark : *private_key_mark,
             field.setting + ": certificate and private_key must be given together (" +
                 (key_missing ? "private_key" : "certificate") + " is missing)");
  }
}

void ConfigReader::read_limits(const Field& field, LimitsConfig& limits) {
  auto count = [this](std::size_t& target) {
    return [this, &target](const Field& key_field) {
      const auto number = read_positive_integer(key_field);
      if (!number) return;
      if (*number > std::numeric_limits<std::size_t>::max()) {
        error_at(key_field.value_mark(),
                 key_field.setting + ": " + std::to_string(*number) + " is too large");
        return;
      }
      target = static_cast<std::size_t>(*number);
    };
  };
  read_map(field.value, field.setting, field.value_mark(),
           {{"max_message_size",
             [&](const Field& key_field) {
               if (const auto size = read_size(key_field)) limits.max_message_size = *size;
             }},
            {"max_line_length", count(limits.max_line_length)},
            {"max_recipients", count(limits.max_recipients)},
            {"max_connections", count(limits.max_connections)},
            {"max_connections_per_ip", count(limits.max_connections_per_ip)},
            {"error_limit", count(limits.error_limit)},
            {"max_auth_failures", count(limits.max_auth_failures)}});
}

void ConfigReader::read_timeouts(const Field& field, TimeoutsConfig& timeouts) {
  // A deadline of zero would cut every session at once; a delay of zero
  // (no back-off after a failed AUTH) is a legitimate choice, e.g. in tests.
  std::optional<YAML::Mark> delay_mark;  // where to point if the two delays disagree
  auto delay = [&](std::chrono::milliseconds& target) {
    return [&, reader = duration_into(target, true)](const Field& key_field) {
      delay_mark = key_field.value_mark();
      reader(key_field);
    };
  };
  read_map(field.value, field.setting, field.value_mark(),
           {{"idle", duration_into(timeouts.idle, false)},
            {"command", duration_into(timeouts.command, false)},
            {"data", duration_into(timeouts.data, false)},
            {"tls_handshake", duration_into(timeouts.tls_handshake, false)},
            {"auth_failure_base_delay", delay(timeouts.auth_failure_base_delay)},
            {"auth_failure_max_delay", delay(timeouts.auth_failure_max_delay)}});
  if (timeouts.auth_failure_max_delay < timeouts.auth_failure_base_delay) {
    error_at(delay_mark.value_or(field.value_mark()),
             field.setting + ": auth_failure_max_delay (" +
                 format_duration(timeouts.auth_failure_max_delay) +
                 ") must not be shorter than auth_failure_base_delay (" +
                 format_duration(timeouts.auth_failure_base_delay) + ")");
  }
}

void ConfigReader::read_log_level(const Field& field, Config& config) {
  const auto level = read_string(field);
  if (!level) return;
  if (std::find(log_levels.begin(), log_levels.end(), *level) == log_levels.end()) {
    std::string expected;
    for (const char* known : log_levels)
      expected += (expected.empty() ? "" : ", ") + std::string(known);
    error_at(field.value_mark(),
             field.setting + ": unknown level '" + *level + "' (expected one of " + expected + ")");
    return;
  }
  config.log_level = *level;
}

void ConfigReader::read_queue(const Field& field, QueueConfig& queue) {
  // A plain decimal number (2, 1.5, 0.25) from minimum to maximum, the
  // maximum itself included or not. No exponent, inf or nan: what the
  // operator reads back should look like what it means.
  constexpr double unbounded = std::numeric_limits<double>::max();
  auto number = [this](double& target, double minimum, double maximum, bool maximum_allowed,
                       std::string_view range) {
    return [this, &target, minimum, maximum, maximum_allowed, range](const Field& key_field) {
      const std::string text = key_field.value.IsScalar() ? key_field.value.Scalar() : "";
      double value = 0;
      const auto [end, status] =
          std::from_chars(text.data(), text.data() + text.size(), value, std::chars_format::fixed);
      // Written so that a nan fails every comparison and is refused.
      const bool in_range =
          value >= minimum && (value < maximum || (maximum_allowed && value == maximum));
      if (text.empty() || status != std::errc() || end != text.data() + text.size() || !in_range) {
        error_at(key_field.value_mark(), key_field.setting + ": expected a number " +
                                             std::string(range) + ", got " +
                                             describe(key_field.value));
        return;
      }
      target = value;
    };
  };
  // Spool segments (queue/spool.h). Below 1M a segment holds only a few
  // messages, and every new one costs a file creation, an fsync and a folder
  // fsync on the writer thread that every acceptance waits for. Above 1G a
  // sealed segment keeps its space until its last needed record is gone or
  // it falls under the compaction threshold, so up to that much disk stays
  // taken by messages long delivered, and a compaction copies up to
  // compaction_threshold of it in one batch, stalling acceptance meanwhile.
  bool delay_warning_given = false;
  auto delay_warning = [&, reader = duration_into(queue.delay_warning_after, true)](
                           const Field& key_field) {
    if (delay_warning_given) {
      error_at(key_field.value_mark(),
               key_field.setting +
                   ": delay_warning_time and delay_warning_after name the same setting; give one");
      return;
    }
    delay_warning_given = true;
    reader(key_field);
  };
  constexpr std::size_t min_segment_size = std::size_t{1} << 20;
  constexpr std::size_t max_segment_size = std::size_t{1} << 30;
  read_map(field.value, field.setting, field.value_mark(),
           {{"first_retry", duration_into(queue.first_retry, false)},
            {"max_retry_interval", duration_into(queue.max_retry_interval, false)},
            {"lifetime", duration_into(queue.lifetime, false)},
            // Postfix's name, and the older one: the same setting, given once.
            {"delay_warning_time", delay_warning},
            {"delay_warning_after", delay_warning},
            {"max_concurrent_deliveries",
             [&](const Field& key_field) {
               if (const auto number = read_positive_integer(key_field)) {
                 queue.max_concurrent_deliveries = static_cast<std::size_t>(*number);
               }
             }},
            {"backoff_factor",
             number(queue.backoff_factor, 1.0, unbounded, true, "of at least 1 (e.g. 2 or 1.5)")},
            // The scheduler shortens an interval by up to this fraction of it
            // (queue/scheduler.h); it clamps to 0 .. 1, so refuse what it would
            // silently change.
            {"jitter", number(queue.jitter, 0.0, 1.0, true, "from 0 to 1 (e.g. 0.2)")},
            {"segment_size",
             [&](const Field& key_field) {
               const auto size = read_size(key_field);
               if (!size) return;
               if (*size < min_segment_size || *size > max_segment_size) {
                 error_at(key_field.value_mark(), key_field.setting +
                                                      ": must be from 1M to 1G, got " +
                                                      describe(key_field.value));
                 return;
               }
               queue.segment_size = *size;
             }},
            // 1 would compact segments whose records are all still needed:
            // the copies fill a segment that is compacted again, forever.
            {"compaction_threshold", number(queue.compaction_threshold, 0.0, 1.0, false,
                                            "from 0 up to, not including, 1 (e.g. 0.25)")},
            // 0 switches the reserve off (Postfix's queue_minfree = 0).
            {"min_free_space", [&](const Field& key_field) {
               if (key_field.value.IsScalar() && key_field.value.Scalar() == "0") {
                 queue.min_free_space = 0;
               } else if (const auto size = read_size(key_field)) {
                 queue.min_free_space = *size;
               }
             }}});
  if (queue.max_retry_interval < queue.first_retry) {
    error_at(field.value_mark(), field.setting + ": max_retry_interval (" +
                                     format_duration(queue.max_retry_interval) +
                                     ") must not be shorter than first_retry (" +
                                     format_duration(queue.first_retry) + ")");
  }
}

void ConfigReader::read_dns(const Field& field, DnsConfig& dns) {
  read_map(field.value, field.setting, field.value_mark(),
           {{"servers",
             [&](const Field& key_field) {
               if (const auto servers = read_string(key_field)) dns.servers = *servers;
             }},
            {"timeout", [&](const Field& key_field) {
               if (const auto value = read_duration(key_field, false)) dns.timeout = *value;
             }}});
}

void ConfigReader::read_domain_map(
    const Field& field, std::string_view what,
    const std::function<void(const std::string& domain, const Field& value_field,
                             const YAML::Mark& key_mark)>& read_entry) {
  if (field.value.IsNull()) return;
  if (!field.value.IsMap()) {
    error_at(field.value_mark(), field.setting + ": expected a map of domain: " +
                                     std::string(what) + ", got " + describe(field.value));
    return;
  }
  for (const auto& entry : field.value) {
    const YAML::Node& key = entry.first;
    const std::string domain = key.IsScalar() ? to_lower(key.Scalar()) : std::string();
    if (domain != "*" && !is_domain_name(domain)) {
      error_at(key.Mark(), field.setting + ": '" + (key.IsScalar() ? key.Scalar() : describe(key)) +
                               "' is not a domain name or '*'");
      continue;
    }
    read_entry(domain, Field{field.setting + "." + domain, entry.second, key.Mark()}, key.Mark());
  }
}

void ConfigReader::read_routes(const Field& field, Config& config) {
  read_domain_map(
      field, "route",
      [&](const std::string& domain, const Field& route_field, const YAML::Mark& key_mark) {
        const auto text = read_string(route_field);
        if (!text) return;
        std::string error;
        auto route = parse_route(*text, error);
        if (!route) {
          error_at(route_field.value_mark(), route_field.setting + ": " + error);
          return;
        }
        if (!config.routes.emplace(domain, std::move(*route)).second) {
          error_at(key_mark, field.setting + ": duplicate route for '" + domain + "'");
        }
      });
}

void ConfigReader::read_tls_policies(const Field& field, Config& config) {
  read_domain_map(
      field, "policy",
      [&](const std::string& domain, const Field& policy_field, const YAML::Mark& key_mark) {
        const auto text = read_string(policy_field);
        if (!text) return;
        const auto level = parse_tls_policy_level(*text);
        if (!level) {
          error_at(policy_field.value_mark(), policy_field.setting + ": unknown policy '" + *text +
                                                  "' (expected " + tls_policy_levels + ")");
          return;
        }
        if (!config.tls_policies.emplace(domain, *level).second) {
          error_at(key_mark, field.setting + ": duplicate policy for '" + domain + "'");
        }
      });
}

void ConfigReader::read_tokens(const Field& field, TokenConfig& tokens) {
  // Token times are unix seconds, so a duration must be whole seconds.
  auto seconds = [this](std::chrono::seconds& target, bool may_be_zero,
                        std::optional<YAML::Mark>& mark) {
    return [this, &target, may_be_zero, &mark](const Field& key_field) {
      const auto value = read_duration(key_field, may_be_zero);
      if (!value) return;
      if (value->count() % 1000 != 0) {
        error_at(key_field.value_mark(),
                 key_field.setting + ": must be whole seconds, got " + describe(key_field.value));
        return;
      }
      target = std::chrono::duration_cast<std::chrono::seconds>(*value);
      mark = key_field.value_mark();
    };
  };
  // Empty: the default file in spool_directory (set by read_document).
  auto path = [this](std::filesystem::path& target) {
    return [this, &target](const Field& key_field) {
      if (const auto value = read_path(key_field, true)) target = *value;
    };
  };
  std::optional<YAML::Mark> temporary_mark;
  std::optional<YAML::Mark> permanent_mark;
  std::optional<YAML::Mark> skew_mark;
  std::optional<YAML::Mark> renew_mark;
  read_map(field.value, field.setting, field.value_mark(),
           {{"store", path(tokens.store)},
            {"secrets_file", path(tokens.secrets_file)},
            {"temporary_validity", seconds(tokens.temporary_validity, false, temporary_mark)},
            {"permanent_validity", seconds(tokens.permanent_validity, false, permanent_mark)},
            {"clock_skew", seconds(tokens.clock_skew, true, skew_mark)},
            {"renew_before", seconds(tokens.renew_before, true, renew_mark)},
            {"remove_submission_token_headers",
             [&](const Field& key_field) {
               if (const auto value = read_boolean(key_field)) {
                 tokens.remove_submission_token_headers = *value;
               }
             }},
            {"sync_contacts_folder", [&](const Field& key_field) {
               if (const auto value = read_boolean(key_field)) {
                 tokens.sync_contacts_folder = *value;
               }
             }}});
  if (tokens.renew_before >= tokens.permanent_validity) {
    error_at(renew_mark.value_or(permanent_mark.value_or(field.value_mark())),
             field.setting + ": renew_before (" + format_duration(tokens.renew_before) +
                 ") must be shorter than permanent_validity (" +
                 format_duration(tokens.permanent_validity) + ")");
  }
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

void ConfigReader::read_fast_lane(const Field& field, FastLaneConfig& fast_lane) {
  read_map(
      field.value, field.setting, field.value_mark(),
      {{"enabled", boolean_into(fast_lane.enabled)},
       {"ca_file",
        [&](const Field& key_field) {
          if (const auto path = read_readable_file(key_field)) fast_lane.ca_file = *path;
        }},
       {"mx_fallback", boolean_into(fast_lane.mx_fallback)},
       {"mx_fallback_port",
        [&](const Field& key_field) {
          if (const auto port = read_port(key_field)) fast_lane.mx_fallback_port = *port;
        }},
       {"timeout", duration_into(fast_lane.timeout)},
       {"idle_timeout", duration_into(fast_lane.idle_timeout)},
       {"distribute_tokens", [&](const Field& key_field) {
          if (const auto mode = read_choice<TokenDistribution>(key_field, "value",
                                                               {{"chat", TokenDistribution::chat},
                                                                {"all", TokenDistribution::all},
                                                                {"off", TokenDistribution::off}})) {
            fast_lane.distribute_tokens = *mode;
          }
        }}});
}

void ConfigReader::read_recipient_probe(const Field& field, Config& config) {
  RecipientProbeConfig& probe = config.recipient_probe;
  // The domains are checked against local_domains and routes once the whole
  // file is read (either may come later); their places are kept for that.
  read_map(field.value, field.setting, field.value_mark(),
           {{"domains",
             [&](const Field& key_field) {
               if (!key_field.value.IsSequence()) {
                 error_at(key_field.value_mark(), key_field.setting +
                                                      ": expected a list of "
                                                      "domains, got " +
                                                      describe(key_field.value));
                 return;
               }
               for (std::size_t index = 0; index < key_field.value.size(); ++index) {
                 const YAML::Node node = key_field.value[index];
                 if (!node.IsScalar()) {
                   error_at(node.Mark(), key_field.setting + "[" + std::to_string(index) +
                                             "]: expected a domain, got " + describe(node));
                   continue;
                 }
                 probe.domains.push_back(to_lower(node.Scalar()));
                 probe_domain_marks_.push_back(node.Mark());
               }
             }},
            {"positive_ttl", duration_into(probe.positive_ttl)},
            {"negative_ttl", duration_into(probe.negative_ttl)}});
}

void ConfigReader::check_recipient_probe_domains(Config& config) {
  RouteTable routes(config.routes);
  for (std::size_t i = 0; i < config.recipient_probe.domains.size(); ++i) {
    const std::string& domain = config.recipient_probe.domains[i];
    const std::string setting = "recipient_probe.domains[" + std::to_string(i) + "]";
    if (!config.is_local_domain(domain)) {
      error_at(probe_domain_marks_[i], setting + ": '" + domain + "' is not a local domain");
      continue;
    }
    const Route::Transport transport = routes.route_for(domain, true).transport;
    if (transport != Route::Transport::smtp && transport != Route::Transport::lmtp) {
      error_at(
          probe_domain_marks_[i],
          setting + ": '" + domain + "' has no smtp or lmtp route, so there is no next hop to ask");
    }
  }
}

void ConfigReader::read_document(const YAML::Node& root, Config& config) {
  // An empty file has no position; point missing keys at its start.
  YAML::Mark start;
  start.line = 0;
  start.column = 0;
  const YAML::Mark root_mark = root.Mark().is_null() ? start : root.Mark();

  auto path_setting = [this](std::filesystem::path& target) {
    return [this, &target](const Field& field) {
      if (const auto path = read_path(field, false)) target = *path;
    };
  };
  read_map(root, "", root_mark,
           {{"hostname", [&](const Field& field) { read_hostname(field, config); }},
            {"local_domains", [&](const Field& field) { read_local_domains(field, config); }},
            {"users_file", path_setting(config.users_file)},
            {"spool_directory", path_setting(config.spool_directory)},
            {"maildir_root", path_setting(config.maildir_root)},
            {"control_socket", path_setting(config.control_socket)},
            {"listeners", [&](const Field& field) { read_listeners(field, config); }},
            {"tls", [&](const Field& field) { read_tls(field, config.tls); }},
            {"limits", [&](const Field& field) { read_limits(field, config.limits); }},
            {"timeouts", [&](const Field& field) { read_timeouts(field, config.timeouts); }},
            {"queue", [&](const Field& field) { read_queue(field, config.queue); }},
            {"dns", [&](const Field& field) { read_dns(field, config.dns); }},
            {"routes", [&](const Field& field) { read_routes(field, config); }},
            {"tls_policies", [&](const Field& field) { read_tls_policies(field, config); }},
            {"tokens", [&](const Field& field) { read_tokens(field, config.tokens); }},
            {"delivery",
             [&](const Field& field) {
               read_map(field.value, field.setting, field.value_mark(),
                        {{"mx_port",
                          [&](const Field& key_field) {
                            if (const auto port = read_port(key_field)) {
                              config.delivery.mx_port = *port;
                            }
                          }},
                         {"tls_policy_ca_file", [&](const Field& key_field) {
                            if (const auto path = read_readable_file(key_field)) {
                              config.delivery.tls_policy_ca_file = *path;
                            }
                          }}});
             }},
            {"fast_lane", [&](const Field& field) { read_fast_lane(field, config.fast_lane); }},
            {"recipient_probe", [&](const Field& field) { read_recipient_probe(field, config); }},
            {"normalise_bare_line_endings", boolean_into(config.normalise_bare_line_endings)},
            {"nul_octets",
             [&](const Field& field) {
               if (const auto policy = read_choice<NulOctets>(
                       field, "value",
                       {{"reject", NulOctets::reject}, {"strip", NulOctets::strip}})) {
                 config.nul_octets = *policy;
               }
             }},
            {"worker_threads",
             [&](const Field& field) {
               const auto threads = read_positive_integer(field);
               if (!threads) return;
               if (*threads > max_worker_threads) {
                 error_at(field.value_mark(), field.setting + ": at most " +
                                                  std::to_string(max_worker_threads) + ", got " +
                                                  std::to_string(*threads));
                 return;
               }
               config.worker_threads = static_cast<unsigned>(*threads);
             }},
            {"log_level", [&](const Field& field) { read_log_level(field, config); }},
            {"log_file",
             [&](const Field& field) {
               if (const auto path = read_path(field, true)) config.log_file = *path;
             }}},
           {"local_domains", "listeners"});
  check_recipient_probe_domains(config);
  // After the whole file: spool_directory may come after the tokens section.
  if (config.tokens.store.empty()) {
    config.tokens.store = config.spool_directory / defaults::token_store_file_name;
  }
  if (config.tokens.secrets_file.empty()) {
    config.tokens.secrets_file = config.spool_directory / defaults::token_secrets_file_name;
  }
  // Likewise limits may come after queue.
  if (!config.queue.min_free_space) {
    config.queue.min_free_space = queue::defaults::min_free_space(config.limits.max_message_size);
  }
}

// The machine's name, for a config that leaves hostname empty.
std::optional<std::string> system_hostname() {
  std::array<char, 256> name{};
  if (::gethostname(name.data(), name.size() - 1) != 0 || name[0] == '\0') return std::nullopt;
  return std::string(name.data());
}

}  // namespace

bool Config::is_local_domain(std::string_view domain) const {
  const std::string lowered = to_lower(domain);
  return std::find(local_domains.begin(), local_domains.end(), lowered) != local_domains.end();
}

bool RecipientProbeConfig::probes(std::string_view domain) const {
  const std::string lowered = to_lower(domain);
  return std::find(domains.begin(), domains.end(), lowered) != domains.end();
}

std::string ConfigError::to_string() const {
  std::string text = file;
  if (line > 0) {
    text += ":" + std::to_string(line);
    if (column > 0) text += ":" + std::to_string(column);
  }
  return text + ": " + message;
}

ConfigLoadResult load_config(const std::filesystem::path& file) {
  const std::string file_name = file.string();
  ConfigLoadResult result;

  // Checked first because a folder opens as a stream and reads as empty.
  if (const auto reason = unreadable_reason(file)) {
    result.errors.push_back({file_name, 0, 0, "cannot read the configuration: " + *reason});
    return result;
  }
  std::ifstream stream(file, std::ios::binary);
  std::ostringstream contents;
  contents << stream.rdbuf();
  if (stream.bad()) {
    result.errors.push_back({file_name, 0, 0, "cannot read the configuration: read error"});
    return result;
  }

  YAML::Node root;
  try {
    root = YAML::Load(contents.str());
  } catch (const YAML::ParserException& syntax_error) {
    ConfigError error{file_name, 0, 0, "YAML syntax error: " + syntax_error.msg};
    if (!syntax_error.mark.is_null()) {
      error.line = syntax_error.mark.line + 1;
      error.column = syntax_error.mark.column + 1;
    }
    result.errors.push_back(std::move(error));
    return result;
  } catch (const YAML::Exception& other) {
    result.errors.push_back({file_name, 0, 0, other.what()});
    return result;
  }

  Config config;
  config.source_file = file;
  ConfigReader reader(file_name);
  reader.read_document(root, config);
  result.errors = reader.take_errors();
  // In file order, however the checks happened to run.
  std::stable_sort(result.errors.begin(), result.errors.end(),
                   [](const ConfigError& left, const ConfigError& right) {
                     return std::pair(left.line, left.column) < std::pair(right.line, right.column);
                   });

  if (result.errors.empty() && config.hostname.empty()) {
    if (const auto name = system_hostname()) {
      config.hostname = *name;
    } else {
      result.errors.push_back(
          {file_name, 0, 0, "hostname is not set and the system host name is unavailable"});
    }
  }
  if (result.errors.empty()) result.config = std::move(config);
  return result;
}

}  // namespace stokend
