// RFC 5321 mailbox and path parsing, with SMTPUTF8 (RFC 6531) addresses.
//
// Contract: parse_path() accepts exactly the RFC 5321 §4.1.2 grammar for
// Reverse-path / Forward-path: "<" [ A-d-l ":" ] Mailbox ">" (the null path
// "<>" when allowed). Local parts are Dot-string or Quoted-string; domains are
// dot-atom domains (UTF-8 labels allowed when utf8 is true) or address
// literals. It reports a specific reason on failure. It never throws.
// The relay-trick detection (relay_trick()) is separate so that policy code
// decides what to refuse.
#pragma once

#include <optional>
#include <string>
#include <string_view>

#include "common/ascii.h"

namespace stokend::message {

struct Mailbox {
  std::string local_part;  // decoded: quotes removed, quoted-pairs resolved
  std::string domain;      // as written (address literals keep their brackets)
  bool local_part_quoted = false;
  bool domain_is_literal = false;

  std::string to_string() const;  // re-encoded for the wire (quotes local part when needed)
  // Lowercases local part and domain: the normalisation of COI-From-Hash and
  // of the token pair hash, and the key for the users file.
  std::string normalized() const;
};

struct Path {
  bool is_null = false;      // "<>"
  std::string source_route;  // the A-d-l before ':', e.g. "@a,@b" (empty when none)
  Mailbox mailbox;
};

struct PathParseResult {
  std::optional<Path> path;
  std::string error;         // why parsing failed (empty on success)
  std::size_t consumed = 0;  // bytes of the input taken by the path, incl. '<' '>'
};

// Parses a path at the start of input ("<...>"); what follows (ESMTP
// parameters) is left to the caller via `consumed`.
// allow_null: accept "<>" (MAIL FROM). utf8: accept UTF-8 in local part and
// domain (the client sent SMTPUTF8).
PathParseResult parse_path(std::string_view input, bool allow_null, bool utf8);

// Parses a bare mailbox "local@domain" (no angle brackets), e.g. for GENSTOKEN
// arguments or stokenctl. Returns std::nullopt on any syntax error.
std::optional<Mailbox> parse_mailbox(std::string_view input, bool utf8 = true);

// Names the relay trick a recipient uses, or returns empty when it uses none.
// Tricks (all refused for unauthenticated mail, RFC 5321 §3.6 / RFC 2505):
// "source route" (<@a,@b:user@dom>), "@ in local part" (quoted
// "user@remote"@local), "percent hack" (user%remote@local), "bang path"
// (remote!user@local); checked in that order. The unquoted form
// user@remote@local never gets here: parse_path refuses it ("unquoted '@' in
// local part").
std::string relay_trick(const Path& path);

}  // namespace stokend::message
