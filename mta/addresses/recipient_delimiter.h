// Address extensions (Postfix's recipient_delimiter): with the delimiter
// `+`, alice+news@example.test is the address alice@example.test with the
// extension "news". The extension reaches the mailbox in a Delivered-To
// field (RFC 9228), so that the user can sort by it.
//
// Contract: `delimiters` is a set of characters, any of which starts an
// extension (Postfix allows several, e.g. "+-"); empty turns extensions off.
// The local part is split at its first delimiter, and only when something
// is left before it: "+news@" is nobody's extension. Addresses are compared
// as given (callers pass lowercase ones: the users' and the aliases' keys
// are lowercase). Pure functions; no state.
#pragma once

#include <optional>
#include <string>
#include <string_view>

namespace stokend::addresses {

struct Extension {
  std::string base;    // the address without its extension: alice@example.test
  std::string suffix;  // the delimiter and the extension: "+news"
};

// The address split at the first delimiter of its local part; nullopt when
// it has none (or the delimiters are empty, or address has no '@').
std::optional<Extension> split_extension(std::string_view address, std::string_view delimiters);

// user_address with the extension of `extended` put back: the address a
// message for alice+news@ is delivered to when the user's own address is
// alice@ (a directory may spell the user differently from the client).
// user_address unchanged when `extended` has no extension.
std::string with_extension(std::string_view user_address, std::string_view extended,
                           std::string_view delimiters);

// Whether `address` is `user` or one of user's extended addresses (the
// submission sender check: alice may send as alice+news@).
bool belongs_to(std::string_view address, std::string_view user, std::string_view delimiters);

}  // namespace stokend::addresses
