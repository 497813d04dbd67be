// The reader of the milters section: the mail filters every message of the
// named listener roles passes through, in order (mta/milter/). See
// config_reader.h.
//
//   milters:
//     - name: rspamd
//       address: inet:127.0.0.1:11332   # or unix:/run/rspamd/milter.sock
//       roles: [mx, submission]          # default: both
//       connect_timeout: 10s
//       command_timeout: 30s
//       default_action: tempfail         # or accept, reject
//
// An address names an IP literal, never a host name: the milter is a
// neighbour, and a DNS lookup in front of every message would be one more
// thing that fails. Names are unique, for the log lines.
#include <algorithm>

#include "mta/config/config_reader.h"

namespace stokend::config_reading {

void ConfigReader::read_milters(const Field& field, Config& config) {
  if (field.value.IsNull()) return;  // `milters:` alone: none
  if (!field.value.IsSequence()) {
    error_at(field.value_mark(),
             field.setting + ": expected a list of milters, got " + describe(field.value));
    return;
  }
  for (std::size_t index = 0; index < field.value.size(); ++index) {
    read_milter(field.value[index], field.setting + "[" + std::to_string(index) + "]", config);
  }
}

void ConfigReader::read_milter(const YAML::Node& node, const std::string& setting, Config& config) {
  MilterConfig milter;
  const std::size_t errors_before = errors_.size();
  read_map(
      node, setting, node.Mark(),
      {{"name",
        [&](const Field& field) {
          const auto name = read_string(field);
          if (!name) return;
          const bool printable =
              std::all_of(name->begin(), name->end(), [](char c) { return c > ' ' && c < 127; });
          if (name->empty() || !printable) {
            error_at(field.value_mark(),
                     field.setting + ": expected a name of printable characters without spaces");
            return;
          }
          const bool taken =
              std::any_of(config.milters.begin(), config.milters.end(),
                          [&](const MilterConfig& other) { return other.name == *name; });
          if (taken) {
            error_at(field.value_mark(), field.setting + ": '" + *name + "' is named twice");
            return;
          }
          milter.name = *name;
        }},
       {"address",
        [&](const Field& field) {
          const auto text = read_string(field);
          if (!text) return;
          const std::string_view address = *text;
          if (address.starts_with("unix:") || address.starts_with("local:")) {
            const auto path = address.substr(address.find(':') + 1);
            if (path.empty()) {
              error_at(field.value_mark(), field.setting + ": unix: needs a socket path");
              return;
            }
            milter.unix_socket = true;
            milter.path = std::string(path);
          } else if (address.starts_with("inet:")) {
            const auto endpoint = parse_listen_address(address.substr(5));
            if (!endpoint) {
              error_at(field.value_mark(),
                       field.setting +
                           ": expected inet:ADDRESS:PORT with an IP address (IPv6 in brackets: "
                           "inet:[::1]:11332), got '" +
                           *text + "'");
              return;
            }
            milter.host = endpoint->address;
            milter.port = endpoint->port;
          } else {
            error_at(
                field.value_mark(),
                field.setting + ": expected unix:PATH or inet:ADDRESS:PORT, got '" + *text + "'");
            return;
          }
          milter.address = *text;
        }},
       {"roles",
        [&](const Field& field) {
          if (!field.value.IsSequence() || field.value.size() == 0) {
            error_at(field.value_mark(), field.setting +
                                             ": expected a list of roles (mx, submission), got " +
                                             describe(field.value));
            return;
          }
          milter.mx = false;
          milter.submission = false;
          for (std::size_t index = 0; index < field.value.size(); ++index) {
            const Field role_field{field.setting + "[" + std::to_string(index) + "]",
                                   field.value[index], field.value[index].Mark()};
            if (const auto role = read_choice<Role>(
                    role_field, "role", {{"mx", Role::mx}, {"submission", Role::submission}})) {
              (*role == Role::mx ? milter.mx : milter.submission) = true;
            }
          }
        }},
       {"connect_timeout", duration_into(milter.connect_timeout)},
       {"command_timeout", duration_into(milter.command_timeout)},
       {"default_action",
        [&](const Field& field) {
          if (const auto action =
                  read_choice<MilterDefaultAction>(field, "action",
                                                   {{"tempfail", MilterDefaultAction::tempfail},
                                                    {"accept", MilterDefaultAction::accept},
                                                    {"reject", MilterDefaultAction::reject}})) {
            milter.default_action = *action;
          }
        }}},
      {"name", "address"});
  if (errors_.size() == errors_before) config.milters.push_back(std::move(milter));
}

}  // namespace stokend::config_reading
