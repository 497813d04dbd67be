// Where to deliver mail for a domain: the hosts to try, in order, found as
// RFC 5321 section 5.1 describes.
//
// Contract: the callback runs once, later, on the loop thread (it comes from
// the resolver's callbacks, so the resolver's lifetime rule applies: it never
// runs after the resolver is destroyed). Outcomes:
// - ok: hosts sorted by preference, equal preferences in random order. With
//   no MX records, the domain itself with preference 0 (the implicit MX), if
//   it has an address (A or AAAA).
// - permanent_failure: the domain does not exist ("domain not found"), it
//   publishes a null MX (RFC 7505: "domain accepts no mail"), or it has
//   neither MX nor address records.
// - temporary_failure: a lookup failed in a way worth retrying later.
// The caller resolves the hosts' addresses itself. Address literals
// ("[192.0.2.1]") are not domains and must not be passed here.
#pragma once

#include <functional>
#include <string>
#include <vector>

#include "dns/resolver.h"

namespace stokend::dns {

struct MailExchangers {
  enum Result { ok, permanent_failure, temporary_failure };

  Result result = temporary_failure;
  std::vector<MxRecord> hosts;  // only when ok
  std::string error;            // only when not ok
};

void find_mail_exchangers(Resolver& resolver, const std::string& domain,
                          std::function<void(MailExchangers)> callback);

}  // namespace stokend::dns
