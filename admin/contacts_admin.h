// stokenctl's `contacts ...` commands: the bridge between the token store
// and COI contact storage messages.
//
//   contacts import FILE|FOLDER [--user ADDRESS] [--restore-issued]
//       FILE: one message, or an mbox file (as `contacts export` writes);
//       FOLDER: a Maildir folder (its cur/ and new/), e.g. a user's
//       .COI.Contacts. Checks every token and merges the valid ones into the
//       store (tokens/coi_contact_import.h): TokenOut into the user's wallet
//       (source "import"); permanent TokenIn missing from the store only
//       with --restore-issued. The user is each message's To (else From)
//       unless --user names it; it must be a local user. Prints one line per
//       token or skipped message and a summary.
//   contacts export USER
//       The user's contact storage messages, rendered from the store (one per
//       contact address: its unexpired issued permanent tokens and wallet
//       token), as an mbox file on standard output.
//   contacts sync [USER]
//       Brings the COI/Contacts folder of USER (or of every user with
//       tokens) in line with the store, e.g. after turning
//       tokens.sync_contacts_folder on: the daemon keeps it in step from
//       then on, as token changes happen.
//
// Contract: as token_admin.h. check_contacts_command() looks at the shape
// only; run_contacts_command() returns 0 on success (an import that
// skipped entries succeeded: the report says what and why), 1 on failure,
// writes data (the report, the mbox) to `out` and messages to `err`. No
// token text is ever printed except inside exported messages.
#pragma once

#include <optional>
#include <ostream>
#include <string>
#include <vector>

#include "mta/config/config.h"

namespace stokend::admin {

// --user and --restore-issued of `contacts import`.
struct ContactsOptions {
  std::optional<std::string> user;
  bool restore_issued = false;
};

std::optional<std::string> check_contacts_command(const std::vector<std::string>& words,
                                                  const ContactsOptions& options);

int run_contacts_command(const Config& config, const std::vector<std::string>& words,
                         const ContactsOptions& options, std::ostream& out, std::ostream& err);

}  // namespace stokend::admin
