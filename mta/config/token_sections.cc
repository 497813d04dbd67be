// Readers of the Submission Token extension's sections: tokens and
// fast_lane. See config_reader.h.
#include <algorithm>

#include "mta/config/config_reader.h"
#include "tokens/redis_url.h"

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
           {{"store",
             [&](const Field& key_field) {
               // A path alone is the SQLite file, as before the backends.
               if (key_field.value.IsMap()) return read_token_store(key_field, tokens);
               path(tokens.store)(key_field);
             }},
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

void ConfigReader::read_token_store(const Field& field, TokenConfig& tokens) {
  std::optional<YAML::Mark> url_mark;
  std::optional<YAML::Mark> path_mark;
  RedisStoreConfig& redis = tokens.redis;
  read_map(
      field.value, field.setting, field.value_mark(),
      {{"backend",
        [&](const Field& key_field) {
          if (const auto backend = read_choice<TokenStoreBackend>(
                  key_field, "backend",
                  {{"sqlite", TokenStoreBackend::sqlite}, {"redis", TokenStoreBackend::redis}})) {
            tokens.store_backend = *backend;
          }
        }},
       {"path",
        [&](const Field& key_field) {
          if (const auto value = read_path(key_field, true)) tokens.store = *value;
          path_mark = key_field.value_mark();
        }},
       {"url",
        [&](const Field& key_field) {
          // Given, even if wrong: its own error says what is wrong with it.
          url_mark = key_field.value_mark();
          const auto url = read_string(key_field);
          if (!url) return;
          const auto parsed = tokens::parse_redis_url(*url);
          if (!parsed.error.empty()) {
            return error_at(key_field.value_mark(), key_field.setting + ": " + parsed.error);
          }
          redis.url = *url;
        }},
       {"password_file",
        [&](const Field& key_field) {
          if (const auto file = read_readable_file(key_field)) redis.password_file = *file;
        }},
       {"tls",
        [&](const Field& key_field) {
          // Debian's hiredis (0.14) has no TLS: say so rather than send the
          // tokens in clear text to a server that expects TLS.
          if (const auto value = read_boolean(key_field); value && *value) {
            error_at(key_field.value_mark(),
                     key_field.setting +
                         ": TLS to Redis is not supported (hiredis without TLS); use a unix "
                         "socket, a private network or a TLS tunnel such as stunnel");
          }
        }},
       {"connect_timeout", duration_into(redis.connect_timeout)},
       {"command_timeout", duration_into(redis.command_timeout)},
       {"wait_replicas",
        [&](const Field& key_field) {
          if (key_field.value.IsScalar() && key_field.value.Scalar() == "0") {
            redis.wait_replicas = 0;
            return;
          }
          const auto count = read_positive_integer(key_field);
          if (!count) return;
          if (*count > 100) {
            return error_at(
                key_field.value_mark(),
                key_field.setting + ": at most 100 replicas, got " + std::to_string(*count));
          }
          redis.wait_replicas = static_cast<unsigned>(*count);
        }},
       {"wait_timeout", duration_into(redis.wait_timeout)},
       {"cache",
        [&](const Field& key_field) {
          if (const auto value = read_boolean(key_field)) redis.cache = *value;
        }},
       {"key_prefix", [&](const Field& key_field) {
          const auto prefix = read_string(key_field);
          if (!prefix) return;
          const bool printable = std::all_of(prefix->begin(), prefix->end(), [](char c) {
            return static_cast<unsigned char>(c) > ' ' && static_cast<unsigned char>(c) < 0x7f;
          });
          if (prefix->size() > 64 || !printable) {
            return error_at(
                key_field.value_mark(),
                key_field.setting + ": must be at most 64 printable characters without spaces");
          }
          redis.key_prefix = *prefix;
        }}});
  if (tokens.store_backend == TokenStoreBackend::redis && redis.url.empty() && !url_mark) {
    error_at(field.value_mark(), field.setting + ": backend redis needs a url");
  }
  if (tokens.store_backend == TokenStoreBackend::redis && path_mark) {
    error_at(*path_mark, field.setting + ": path is the SQLite file; backend redis has none");
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
       {"dialects",
        [&](const Field& key_field) {
          read_domain_map(key_field, "dialect",
                          [&](const std::string& domain, const Field& dialect_field,
                              const YAML::Mark& key_mark) {
                            const auto dialect =
                                read_choice<TokenDialect>(dialect_field, "dialect",
                                                          {{"auto", TokenDialect::automatic},
                                                           {"lhlo", TokenDialect::lhlo},
                                                           {"ehlo-sync", TokenDialect::ehlo_sync}});
                            if (!dialect) return;
                            if (!fast_lane.dialects.emplace(domain, *dialect).second) {
                              error_at(key_mark, key_field.setting + ": duplicate dialect for '" +
                                                     domain + "'");
                            }
                          });
        }},
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
