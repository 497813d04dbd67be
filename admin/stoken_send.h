// stokenctl's `stoken` commands, for testing any Token Server by hand:
// `stoken send` delivers one message through it with given tokens, as the
// Remote Client would (rfcdraft/ §7, or the EHLO + SYNC form of §10), and
// prints the swaks-like transcript and each recipient's result.
// (`stoken check`, the conformance check, is in stoken_check.h.)
//
// Contract: run_stoken_command() takes the words after `stoken` (options
// included: these commands need no configuration file) and returns the
// exit status: 0 when every recipient got 2.1.12 or 2.1.13, 1 otherwise or
// when the server could not be reached or answered nonsense, 2 on a usage
// error (the message on err). Transcript and results go to out; tokens are
// shortened unless --show-tokens.
#pragma once

#include <ostream>
#include <string>
#include <vector>

namespace stokend::admin {

int run_stoken_command(const std::vector<std::string>& arguments, std::ostream& out,
                       std::ostream& err);

// The usage lines of the stoken commands, for stokenctl --help.
extern const char* const stoken_usage;

}  // namespace stokend::admin
