// Joining A and AAAA answers; recognising IP literals.
#include "dns/address_answers.h"

#include <arpa/inet.h>

#include <algorithm>
#include <utility>

namespace stokend::dns {

Answer<std::string> combine_address_answers(Answer<std::string> ipv4, Answer<std::string> ipv6) {
  bool has_ipv4 = ipv4.status == Status::ok;
  bool has_ipv6 = ipv6.status == Status::ok;
  if (has_ipv4 && has_ipv6) {
    Answer<std::string> both = std::move(ipv4);
    both.records.insert(both.records.end(), ipv6.records.begin(), ipv6.records.end());
    both.ttl_seconds = std::min(both.ttl_seconds, ipv6.ttl_seconds);
    return both;
  }
  if (has_ipv4) return ipv4;
  if (has_ipv6) return ipv6;

  Answer<std::string> none;
  if (ipv4.status == Status::temporary_failure || ipv6.status == Status::temporary_failure) {
    none.status = Status::temporary_failure;
  } else if (ipv4.status == Status::not_found && ipv6.status == Status::not_found) {
    none.status = Status::not_found;
  } else {
    none.status = Status::no_data;
  }
  none.ttl_seconds = std::min(ipv4.ttl_seconds, ipv6.ttl_seconds);
  none.error = ipv4.error;
  if (!ipv6.error.empty() && ipv6.error != ipv4.error) {
    none.error += none.error.empty() ? ipv6.error : "; " + ipv6.error;
  }
  return none;
}

std::optional<Answer<std::string>> ip_literal_answer(const std::string& host) {
  in6_addr address{};  // large enough for either family
  if (inet_pton(AF_INET, host.c_str(), &address) != 1 &&
      inet_pton(AF_INET6, host.c_str(), &address) != 1) {
    return std::nullopt;
  }
  return Answer<std::string>{Status::ok, {host}, "", 0};
}

}  // namespace stokend::dns
