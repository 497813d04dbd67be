// stokenctl's `queue ...` commands: the running daemon's queue over its
// control socket (list, show, flush, hold, release, delete, requeue: mailq
// and postsuper in one; the last four take an id, ALL, or --domain D), and `queue damaged`, which
// reads the reports in the spool's quarantine/ folder directly, so it works whether or not the
// daemon runs.
//
// Contract: as token_admin.h. check_queue_command() looks at the shape of
// the command only and returns a usage error or nothing;
// run_queue_command() returns the exit status (0 success, 1 failure: daemon
// not running, unknown queue id, unreadable quarantine), writes the data of
// list, show and damaged to `out` and messages to `err`.
#pragma once

#include <optional>
#include <ostream>
#include <string>
#include <vector>

#include "mta/config/config.h"

namespace stokend::admin {

// --domain D, for the commands that change messages.
struct QueueOptions {
  std::optional<std::string> domain;
};

std::optional<std::string> check_queue_command(const std::vector<std::string>& words,
                                               const QueueOptions& options = {});

int run_queue_command(const Config& config, const std::vector<std::string>& words,
                      const QueueOptions& options, std::ostream& out, std::ostream& err);

}  // namespace stokend::admin
