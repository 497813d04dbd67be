// See tls_policies.h.
#include "mta/tls_policies.h"

#include "common/ascii.h"
#include "message/address.h"
#include "mta/defaults.h"

namespace stokend {
namespace {

// The default is spelt as text in defaults.h like every other keyword
// default; checked here at compile time so a typo there cannot ship.
constexpr TlsPolicyLevel default_level = *parse_tls_policy_level(defaults::tls_policy);

}  // namespace

std::string_view to_string(TlsPolicyLevel level) {
  switch (level) {
    case TlsPolicyLevel::may:
      return "may";
    case TlsPolicyLevel::require:
      return "require";
    case TlsPolicyLevel::verify:
      break;
  }
  return "verify";
}

TlsPolicyLevel TlsPolicyTable::policy_for(std::string_view domain) const {
  if (auto found = policies_.find(ascii_lowercase(domain)); found != policies_.end()) {
    return found->second;
  }
  if (auto fallback = policies_.find("*"); fallback != policies_.end()) return fallback->second;
  return default_level;
}

void apply_tls_policy(TlsPolicyLevel level, const std::string& name_to_verify,
                      Destination& destination) {
  if (level == TlsPolicyLevel::may) return;
  destination.tls_policy = TlsPolicy::required;
  if (level == TlsPolicyLevel::verify) {
    destination.verify_certificate = true;
    destination.tls_server_name = name_to_verify;
  }
}

}  // namespace stokend
