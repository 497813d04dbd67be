// Parsing for the Submission Token commands of the session: the AUTH STOKEN
// response, and the arguments of GENSTOKEN and REVSTOKEN (rfcdraft/ §5, §7).
//
// Contract: pure functions, no I/O, never throw. A failure carries the
// reply the server sends, so the session answers with a specific error.
#pragma once

#include <optional>
#include <string>
#include <string_view>

#include "message/address.h"
#include "mta/server/smtp_command.h"
#include "tokens/secret_rings.h"

namespace stokend::server {

struct StokenCredentials {
  std::string recipient;  // as the client wrote it
  std::string token;
};

// AUTH STOKEN's one client message: base64 (RFC 4648, padded) of
// recipient NUL token. Draft -00 wrote the separator as a literal
// backslash-zero ("\0"); that spelling is accepted too.
std::optional<StokenCredentials> decode_stoken_response(std::string_view base64);

// An address as the token commands take it (GENSTOKEN, REVSTOKEN, the
// recipient of AUTH STOKEN): a mailbox with or without angle brackets, no
// source route, a domain that is a name (tokens pair mailboxes, not hosts).
std::optional<message::Mailbox> parse_token_address(std::string_view word);

struct TokenCommandArguments {
  tokens::TokenKind kind = tokens::TokenKind::temporary;  // GENSTOKEN only
  message::Mailbox remote;
  std::optional<message::Mailbox> local;  // absent: the login's own address
};

struct TokenCommandParseResult {
  std::optional<TokenCommandArguments> arguments;
  Reply error;  // when arguments is empty
};

// "GENSTOKEN" SP ("PERM" / "TEMP") SP remote-address [SP local-address];
// addresses with or without angle brackets. 501 5.5.4 for the syntax, 501
// 5.1.3 for a bad remote address, 501 5.1.7 for a bad local address.
TokenCommandParseResult parse_genstoken_arguments(std::string_view argument);
// "REVSTOKEN" SP remote-address [SP local-address]; errors as GENSTOKEN.
TokenCommandParseResult parse_revstoken_arguments(std::string_view argument);

}  // namespace stokend::server
