// Per-domain outbound TLS policy, like Postfix's smtp_tls_policy_maps: how
// strictly mail for a recipient domain must be protected on its way out.
//
//   may      opportunistic STARTTLS (RFC 7435): TLS when offered, plaintext
//            otherwise; the certificate is not checked (the default)
//   require  STARTTLS must be offered and succeed; the certificate is not
//            checked (Postfix's "encrypt")
//   verify   as require, and the certificate must chain to a trusted CA and
//            name the host (Postfix's "verify"): the MX host name for MX
//            delivery, the recipient domain for a fixed smtp:[ip]:port next
//            hop (an IP literal has no name of its own to check)
//
// Contract: TlsPolicyTable::policy_for() returns the policy of the exact
// domain (case-insensitive; no parent-domain matching), else that of "*",
// else defaults::tls_policy. apply_tls_policy() only ever strengthens a
// destination, so a route that already asks for more is not weakened, and it
// is meant for SMTP destinations only: local mailstores (maildir, lmtp) are
// never passed to it.
#pragma once

#include <map>
#include <optional>
#include <string>
#include <string_view>

#include "common/destination.h"

namespace stokend {

enum class TlsPolicyLevel { may, require, verify };

// "may", "require" or "verify"; nothing for any other text (case matters, as
// for every other keyword in the config).
constexpr std::optional<TlsPolicyLevel> parse_tls_policy_level(std::string_view text) {
  if (text == "may") return TlsPolicyLevel::may;
  if (text == "require") return TlsPolicyLevel::require;
  if (text == "verify") return TlsPolicyLevel::verify;
  return std::nullopt;
}

// For messages: "may, require or verify".
inline constexpr const char* tls_policy_levels = "may, require or verify";

std::string_view to_string(TlsPolicyLevel level);

class TlsPolicyTable {
 public:
  TlsPolicyTable() = default;
  // policies: domain (lowercase) or "*" → level.
  explicit TlsPolicyTable(std::map<std::string, TlsPolicyLevel> policies)
      : policies_(std::move(policies)) {}

  TlsPolicyLevel policy_for(std::string_view domain) const;

 private:
  std::map<std::string, TlsPolicyLevel> policies_;
};

// Makes destination obey level. name_to_verify is the name the certificate
// must carry under verify (the MX host name, or the recipient domain for a
// fixed next hop); it is also sent as SNI.
void apply_tls_policy(TlsPolicyLevel level, const std::string& name_to_verify,
                      Destination& destination);

}  // namespace stokend
