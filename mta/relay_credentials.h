// The SASL credentials stokend gives a smarthost (delivery.relay_credentials),
// in the format of Postfix's smtp_sasl_password_maps source file, so an
// operator can reuse theirs:
//
//   # next hop           login:password
//   [relay.example]:587  stokend@example.org:s3cret
//
// One entry per line; blank lines and lines starting with '#' are ignored.
// The key is the route's next hop exactly as routes: spells it ("[host]:port",
// case-insensitive host); the login ends at the first ':' and the password
// is the rest of the line after it (it may contain ':' and spaces are kept
// only inside it, not around it).
//
// Contract: parse_relay_credentials() is pure and never throws; on the
// first bad line it returns nothing and names the line (never quoting a
// password). load_relay_credentials() refuses a file that is not a regular
// file or that its group or others may read or write (mode & 077 != 0):
// "chmod 600 FILE", as the error says. Passwords are never logged.
#pragma once

#include <filesystem>
#include <map>
#include <optional>
#include <string>
#include <string_view>

namespace stokend {

struct RelayCredentials {
  std::string login;
  std::string password;
};

// "[host]:port" (host lowercase) -> credentials.
using RelayCredentialMap = std::map<std::string, RelayCredentials>;

std::optional<RelayCredentialMap> parse_relay_credentials(std::string_view text,
                                                          std::string& error);

std::optional<RelayCredentialMap> load_relay_credentials(const std::filesystem::path& path,
                                                         std::string& error);

// The key an smtp route's next hop has in the map: "[host]:port".
std::string relay_credentials_key(std::string_view host, std::uint16_t port);

}  // namespace stokend
