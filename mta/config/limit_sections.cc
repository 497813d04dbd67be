// Readers of the limits and timeouts sections: what one session may do and
// how long it may take. See config_reader.h.
#include <limits>

#include "mta/config/config_reader.h"

namespace stokend::config_reading {

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
            {"max_hops", count(limits.max_hops)},
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

}  // namespace stokend::config_reading
