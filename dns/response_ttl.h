// Reads from a raw DNS response (RFC 1035 section 4.1) the time-to-live values
// a cache needs, which the c-ares record parsers do not report.
//
// Contract: both functions read only inside the given bytes and return
// nullopt for a response too short or malformed to tell. TTLs with the top bit
// set count as zero (RFC 2181 section 8).
#pragma once

#include <cstdint>
#include <optional>
#include <span>

namespace stokend::dns {

// The lowest TTL among the answer section's records, CNAMEs included: a chain
// is only as fresh as its shortest-lived link. nullopt if there are none.
std::optional<std::uint32_t> lowest_answer_ttl(std::span<const unsigned char> response);

// How long a negative answer (NXDOMAIN or NODATA) may be cached: the lower of
// the authority section SOA's own TTL and its MINIMUM field (RFC 2308 section
// 5). nullopt if the response carries no SOA.
std::optional<std::uint32_t> negative_answer_ttl(std::span<const unsigned char> response);

}  // namespace stokend::dns
