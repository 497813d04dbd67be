// RFC 6186 / RFC 8314 submission service discovery over the Resolver
// interface: two SRV questions asked together, their answers joined.
#include "dns/submission_servers.h"

#include <memory>
#include <utility>

#include "dns/record_order.h"

namespace stokend::dns {
namespace {

// Collects both SRV answers, then reports.
class Discovery {
 public:
  Discovery(std::string domain, std::function<void(SubmissionServers)> callback)
      : domain_(std::move(domain)), callback_(std::move(callback)) {}

  void answered(bool implicit_tls, Answer<SrvRecord> answer) {
    (implicit_tls ? implicit_tls_answer_ : starttls_answer_) = std::move(answer);
    if (++answers_received_ == 2) callback_(result());
  }

 private:
  SubmissionServers result() {
    SubmissionServers found;
    add_servers(implicit_tls_answer_, true, found.servers);
    add_servers(starttls_answer_, false, found.servers);
    if (!found.servers.empty()) {
      found.result = SubmissionServers::ok;
      return found;
    }
    for (const Answer<SrvRecord>* answer : {&implicit_tls_answer_, &starttls_answer_}) {
      if (answer->status == Status::temporary_failure) {
        found.result = SubmissionServers::temporary_failure;
        found.error = answer->error;
        return found;
      }
    }
    found.result = SubmissionServers::not_available;
    found.error = domain_ + ": no submission service published";
    return found;
  }

  static void add_servers(const Answer<SrvRecord>& answer, bool implicit_tls,
                          std::vector<SubmissionServer>& servers) {
    if (answer.status != Status::ok) return;
    for (SrvRecord& record : order_service_records(answer.records, random_generator())) {
      // RFC 2782: a target of "." means the service is decidedly not
      // available. Such a record should stand alone; skip it regardless.
      if (record.target == "." || record.target.empty()) continue;
      servers.push_back(SubmissionServer{std::move(record.target), record.port, implicit_tls});
    }
  }

  std::string domain_;
  std::function<void(SubmissionServers)> callback_;
  Answer<SrvRecord> implicit_tls_answer_;
  Answer<SrvRecord> starttls_answer_;
  int answers_received_ = 0;
};

}  // namespace

void find_submission_servers(Resolver& resolver, const std::string& domain,
                             std::function<void(SubmissionServers)> callback) {
  auto discovery = std::make_shared<Discovery>(domain, std::move(callback));
  resolver.resolve_srv("_submissions._tcp." + domain, [discovery](Answer<SrvRecord> answer) {
    discovery->answered(true, std::move(answer));
  });
  resolver.resolve_srv("_submission._tcp." + domain, [discovery](Answer<SrvRecord> answer) {
    discovery->answered(false, std::move(answer));
  });
}

}  // namespace stokend::dns
