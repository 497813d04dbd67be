// stokenctl's `user ...` commands: adding, removing and listing the local
// users of the users file, and setting a user's COI message filter. A
// running stokend notices the changed file and reloads it by itself.
//
// Contract: as token_admin.h. check_user_command() looks at the shape of the
// command only and returns a usage error or nothing; run_user_command()
// returns the exit status (0 success, 1 failure), writes the user list to
// `out` and messages to `err`, and never prints a password or its hash. A
// new user's password is read from standard input: one line from a pipe or
// file, asked twice without echo on a terminal.
#pragma once

#include <optional>
#include <ostream>
#include <string>
#include <vector>

#include "mta/config/config.h"

namespace stokend::admin {

std::optional<std::string> check_user_command(const std::vector<std::string>& words);

int run_user_command(const Config& config, const std::vector<std::string>& words, std::ostream& out,
                     std::ostream& err);

}  // namespace stokend::admin
