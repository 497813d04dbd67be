// Per-domain outbound TLS policy (mta/tls_policies.h): parsing the levels,
// the lookup order (exact domain, then "*", then the default) and what each
// level does to an SMTP destination.
#include <catch2/catch.hpp>

#include "mta/tls_policies.h"

using stokend::apply_tls_policy;
using stokend::Destination;
using stokend::parse_tls_policy_level;
using stokend::Protocol;
using stokend::TlsPolicy;
using stokend::TlsPolicyLevel;
using stokend::TlsPolicyTable;

TEST_CASE("TLS policy levels parse and print", "[tls_policy]") {
  CHECK(parse_tls_policy_level("may") == TlsPolicyLevel::may);
  CHECK(parse_tls_policy_level("require") == TlsPolicyLevel::require);
  CHECK(parse_tls_policy_level("verify") == TlsPolicyLevel::verify);
  CHECK_FALSE(parse_tls_policy_level("encrypt"));
  CHECK_FALSE(parse_tls_policy_level("Require"));
  CHECK_FALSE(parse_tls_policy_level(""));
  CHECK(stokend::to_string(TlsPolicyLevel::may) == "may");
  CHECK(stokend::to_string(TlsPolicyLevel::require) == "require");
  CHECK(stokend::to_string(TlsPolicyLevel::verify) == "verify");
}

TEST_CASE("without policies every domain is opportunistic", "[tls_policy]") {
  const TlsPolicyTable table;
  CHECK(table.policy_for("bank.example") == TlsPolicyLevel::may);
  CHECK(table.policy_for("") == TlsPolicyLevel::may);
}

TEST_CASE("a domain's own policy wins, then \"*\", case-insensitively", "[tls_policy]") {
  const TlsPolicyTable table({{"bank.example", TlsPolicyLevel::require},
                              {"partner.example", TlsPolicyLevel::verify},
                              {"lax.example", TlsPolicyLevel::may},
                              {"*", TlsPolicyLevel::require}});
  CHECK(table.policy_for("bank.example") == TlsPolicyLevel::require);
  CHECK(table.policy_for("Partner.EXAMPLE") == TlsPolicyLevel::verify);
  // An explicit "may" is not overridden by a stricter "*".
  CHECK(table.policy_for("lax.example") == TlsPolicyLevel::may);
  CHECK(table.policy_for("other.example") == TlsPolicyLevel::require);
  // Exact names only: a subdomain takes the fallback, not its parent's policy.
  CHECK(table.policy_for("mail.partner.example") == TlsPolicyLevel::require);
}

TEST_CASE("without \"*\" unlisted domains take the default", "[tls_policy]") {
  const TlsPolicyTable table({{"partner.example", TlsPolicyLevel::verify}});
  CHECK(table.policy_for("partner.example") == TlsPolicyLevel::verify);
  CHECK(table.policy_for("other.example") == TlsPolicyLevel::may);
}

TEST_CASE("applying a policy to a destination", "[tls_policy]") {
  const Destination hop = Destination::tcp(Protocol::smtp, "192.0.2.7", 25);

  Destination may = hop;
  apply_tls_policy(TlsPolicyLevel::may, "bank.example", may);
  CHECK(may.tls_policy == TlsPolicy::opportunistic);
  CHECK_FALSE(may.verify_certificate);
  CHECK(may.key() == hop.key());  // pooled with ordinary connections

  Destination require = hop;
  apply_tls_policy(TlsPolicyLevel::require, "bank.example", require);
  CHECK(require.tls_policy == TlsPolicy::required);
  CHECK_FALSE(require.verify_certificate);
  CHECK(require.tls_server_name.empty());
  CHECK(require.key() == "smtp:[192.0.2.7]:25;tls=required");

  Destination verify = hop;
  apply_tls_policy(TlsPolicyLevel::verify, "partner.example", verify);
  CHECK(verify.tls_policy == TlsPolicy::required);
  CHECK(verify.verify_certificate);
  CHECK(verify.tls_server_name == "partner.example");
  // Never shares a pooled connection made under weaker rules.
  CHECK(verify.key() == "smtp:[192.0.2.7]:25;tls=required;verify=partner.example");
}
