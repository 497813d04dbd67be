// stokenctl's `secrets ...` and `token ...` commands: rotating and listing
// the token secrets, and minting, revoking, inspecting and listing tokens.
//
// They work on the secrets file and the configured token store directly
// (config keys tokens.secrets_file and tokens.store), with the daemon
// running or not: an SQLite store lets both write (a running stokend sees
// another process's changes within 0.1 s, SqliteTokenStore), a Redis store
// is shared by every node at once, and a running stokend notices a rotated
// secrets file by itself (SecretRings::refresh_if_changed). `token migrate`
// copies the configured store into another backend.
//
// Contract: check_*_command() look at the shape of the command only (no
// file is read) and return a usage error or nothing. run_*_command() return
// the exit status (0 success, 1 failure; `token inspect` 0 only for a valid
// token), write data (ids, tables, tokens, inspected fields) to `out` and
// messages to `err`, and never print a secret key.
#pragma once

#include <optional>
#include <ostream>
#include <string>
#include <vector>

#include "mta/config/config.h"

namespace stokend::admin {

// --remote and --local of `token inspect`.
struct PairOptions {
  std::optional<std::string> remote;
  std::optional<std::string> local;
};

std::optional<std::string> check_secrets_command(const std::vector<std::string>& words);
std::optional<std::string> check_token_command(const std::vector<std::string>& words,
                                               const PairOptions& pair);

int run_secrets_command(const Config& config, const std::vector<std::string>& words,
                        std::ostream& out, std::ostream& err);
int run_token_command(const Config& config, const std::vector<std::string>& words,
                      const PairOptions& pair, std::ostream& out, std::ostream& err);

}  // namespace stokend::admin
