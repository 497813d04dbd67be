// RFC 5321 section 5.1 over the Resolver interface: MX first, then the
// implicit MX, with RFC 7505 null MX detection.
#include "dns/mail_exchangers.h"

#include <utility>

#include "dns/record_order.h"

namespace stokend::dns {
namespace {

bool is_null_mx(const MxRecord& record) { return record.host == "." || record.host.empty(); }

MailExchangers failure(MailExchangers::Result result, std::string error) {
  return MailExchangers{result, {}, std::move(error)};
}

// RFC 5321 section 5.1: "If an empty list of MXs is returned, the address is
// treated as if it was associated with an implicit MX RR, with a preference
// of 0, pointing to that host." Only if the host has an address, though.
void use_implicit_mx(Resolver& resolver, const std::string& domain,
                     std::function<void(MailExchangers)> callback) {
  resolver.resolve_addresses(
      domain, [domain, callback = std::move(callback)](Answer<std::string> answer) {
        switch (answer.status) {
          case Status::ok:
            callback(MailExchangers{MailExchangers::ok, {MxRecord{0, domain}}, ""});
            return;
          case Status::no_data:
          case Status::not_found:
            callback(failure(MailExchangers::permanent_failure,
                             domain + ": domain has no MX and no address records"));
            return;
          case Status::temporary_failure:
            callback(failure(MailExchangers::temporary_failure, answer.error));
            return;
        }
      });
}

}  // namespace

void find_mail_exchangers(Resolver& resolver, const std::string& domain,
                          std::function<void(MailExchangers)> callback) {
  resolver.resolve_mx(
      domain, [&resolver, domain, callback = std::move(callback)](Answer<MxRecord> answer) mutable {
        switch (answer.status) {
          case Status::not_found:
            callback(failure(MailExchangers::permanent_failure, domain + ": domain not found"));
            return;
          case Status::temporary_failure:
            callback(failure(MailExchangers::temporary_failure, answer.error));
            return;
          case Status::no_data:
            use_implicit_mx(resolver, domain, std::move(callback));
            return;
          case Status::ok:
            break;
        }
        if (answer.records.empty()) {
          use_implicit_mx(resolver, domain, std::move(callback));
          return;
        }
        // RFC 7505 section 3: a null MX is the domain's only MX and means it
        // accepts no mail. A null MX mixed with real ones breaks that rule; the
        // real ones are used, as the more useful reading.
        std::vector<MxRecord> hosts = std::move(answer.records);
        std::erase_if(hosts, is_null_mx);
        if (hosts.empty()) {
          callback(failure(MailExchangers::permanent_failure,
                           domain + ": domain accepts no mail (RFC 7505 null MX)"));
          return;
        }
        callback(MailExchangers{MailExchangers::ok,
                                order_mail_exchangers(std::move(hosts), random_generator()), ""});
      });
}

}  // namespace stokend::dns
