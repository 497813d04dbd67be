// The configuration's `maildir:` section (owner, group, file_mode,
// directory_mode) as the built-in Maildir store and the COI/Contacts
// mirror apply it (MaildirPermissions, maildir_layout.h), for both
// programs: the daemon's deliveries and stokenctl's contacts commands.
//
// Contract: names are resolved to ids now; the result is checked against
// who the process is (call it as the user the files are written as):
// giving files to another owner needs root, and to a group, membership of
// it. Null with the reason otherwise, so a start fails instead of every
// delivery failing at chown.
#pragma once

#include <optional>
#include <string>

#include "mta/config/config.h"
#include "mta/store/maildir_layout.h"

namespace stokend::store {

std::optional<MaildirPermissions> maildir_permissions_of(const Config& config, std::string& error);

}  // namespace stokend::store
