// The resolver interface: the DNS questions stokend asks (MX, addresses, SRV,
// TXT) and the shape of their answers. AresResolver asks real servers;
// FakeResolver (tests/support/fake_resolver.h) serves preset answers to unit tests.
//
// Contract, for every implementation:
// - Each resolve_* call returns at once. Its callback runs exactly once, later,
//   on the thread of the event loop the resolver was built on, and never inside
//   the resolve_* call itself (cached and preset answers are deferred too).
// - resolve_* may only be called on the loop thread.
// - Lifetime rule: once a resolver is destroyed, none of its pending callbacks
//   will ever run. A caller that may itself go away before an answer arrives
//   captures a std::weak_ptr to itself in the callback and checks it.
// - A callback may destroy the resolver that calls it.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <string_view>
#include <vector>

namespace stokend::dns {

struct MxRecord {
  std::uint16_t preference = 0;
  std::string host;  // "." is the RFC 7505 null MX

  bool operator==(const MxRecord&) const = default;
};

struct SrvRecord {
  std::uint16_t priority = 0;
  std::uint16_t weight = 0;
  std::uint16_t port = 0;
  std::string target;  // "." means the service is not available (RFC 2782)

  bool operator==(const SrvRecord&) const = default;
};

enum class Status {
  ok,                // records found (records is not empty)
  no_data,           // the name exists but has no records of the type asked (NODATA)
  not_found,         // the name does not exist (NXDOMAIN, RFC 8020) or is not a valid name
  temporary_failure  // SERVFAIL, timeout, refused, network error: worth asking again later
};

std::string_view to_string(Status status);

template <class Record>
struct Answer {
  Status status = Status::temporary_failure;
  std::vector<Record> records;
  std::string error;              // human-readable reason when status is not ok
  std::uint32_t ttl_seconds = 0;  // how long the answer stays valid (remaining, if cached)
};

template <class Record>
using AnswerCallback = std::function<void(Answer<Record>)>;

class Resolver {
 public:
  virtual ~Resolver() = default;

  // MX records of a domain, in the order the server sent them (see
  // find_mail_exchangers for the RFC 5321 section 5.1 ordering).
  virtual void resolve_mx(const std::string& domain, AnswerCallback<MxRecord> callback) = 0;

  // IPv4 and IPv6 addresses of a host, as text ("192.0.2.1", "2001:db8::1"),
  // IPv4 first. Both A and AAAA are asked: ok if either has records;
  // temporary_failure only if neither has records and one failed temporarily.
  // A host that is itself an IP literal is answered with that literal.
  virtual void resolve_addresses(const std::string& host, AnswerCallback<std::string> callback) = 0;

  // SRV records of a service name such as "_submissions._tcp.example.org", in
  // the order the server sent them (see order_service_records for RFC 2782).
  virtual void resolve_srv(const std::string& name, AnswerCallback<SrvRecord> callback) = 0;

  // TXT records, one string per record (its character-strings concatenated,
  // as RFC 7208 section 3.3 reads them).
  virtual void resolve_txt(const std::string& name, AnswerCallback<std::string> callback) = 0;
};

}  // namespace stokend::dns
