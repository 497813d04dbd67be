// Readers of the settings about the daemon as a system service: `user` and
// `group` (who it runs as, daemon/privileges.h) and the `maildir` section
// (who owns what the built-in Maildir store creates). See config_reader.h.
#include "mta/config/config_reader.h"
#include "mta/system_accounts.h"

namespace stokend::config_reading {

void ConfigReader::read_account(const Field& field, std::string& target, bool is_group) {
  const auto name = read_string(field);
  if (!name) return;
  // Checked now, so a typo stops --check-config rather than a start.
  const bool exists = name->empty() || (is_group ? find_system_group(*name).has_value()
                                                 : find_system_user(*name).has_value());
  if (!exists) {
    error_at(field.value_mark(), field.setting + ": no " + (is_group ? "group" : "user") +
                                     " named '" + *name + "' on this system");
    return;
  }
  target = *name;
}

std::optional<unsigned> ConfigReader::read_mode(const Field& field) {
  // Octal as chmod(1) spells it, "0640" or 640; the file's type and the
  // set-id bits are not the store's to set, so at most 0777 (and the
  // setgid bit for folders, which makes new entries inherit the group).
  const auto text = read_string(field);
  if (!text) return std::nullopt;
  unsigned mode = 0;
  bool valid = !text->empty() && text->size() <= 5;
  for (char digit : *text) {
    if (digit < '0' || digit > '7') valid = false;
    if (valid) mode = mode * 8 + static_cast<unsigned>(digit - '0');
  }
  if (!valid || (mode & ~02777u) != 0) {
    error_at(field.value_mark(),
             field.setting + ": expected an octal mode such as 0640, got " + describe(field.value));
    return std::nullopt;
  }
  if ((mode & 0600u) != 0600u) {
    error_at(field.value_mark(), field.setting + ": the owner must keep read and write (0600)");
    return std::nullopt;
  }
  return mode;
}

void ConfigReader::read_maildir_permissions(const Field& field, MaildirPermissionsConfig& maildir) {
  read_map(field.value, field.setting, field.value_mark(),
           {{"owner", [&](const Field& key) { read_account(key, maildir.owner, false); }},
            {"group", [&](const Field& key) { read_account(key, maildir.group, true); }},
            {"file_mode",
             [&](const Field& key) {
               const auto mode = read_mode(key);
               if (!mode) return;
               if ((*mode & 02000u) != 0) {
                 error_at(key.value_mark(), key.setting + ": no set-group-id bit on mail files");
                 return;
               }
               maildir.file_mode = *mode;
             }},
            {"directory_mode", [&](const Field& key) {
               const auto mode = read_mode(key);
               if (!mode) return;
               if ((*mode & 0100u) == 0) {
                 error_at(key.value_mark(),
                          key.setting + ": the owner must be able to enter (0700)");
                 return;
               }
               maildir.directory_mode = *mode;
             }}});
}

}  // namespace stokend::config_reading
