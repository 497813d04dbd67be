// Readers of the Submission Token extension's sections: tokens and
// fast_lane. See config_reader.h.
#include "mta/config/config_reader.h"

namespace stokend::config_reading {

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

void ConfigReader::read_fast_lane(const Field& field, FastLaneConfig& fast_lane) {
  read_map(
      field.value, field.setting, field.value_mark(),
      {{"enabled", boolean_into(fast_lane.enabled)},
       {"ca_file",
        [&](const Field& key_field) {
          if (const auto path = read_ca_file(key_field)) fast_lane.ca_file = *path;
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

}  // namespace stokend::config_reading
