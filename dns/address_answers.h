// How the answers to the two address questions (A and AAAA) become the one
// answer of Resolver::resolve_addresses, and the shortcut for IP literals.
#pragma once

#include <optional>
#include <string>

#include "dns/resolver.h"

namespace stokend::dns {

// ok if either answer has addresses (IPv4 first), with the lower TTL of those
// that had; otherwise temporary_failure if either failed temporarily, since
// the missing family may well exist; otherwise not_found if both said the
// name does not exist; otherwise no_data.
Answer<std::string> combine_address_answers(Answer<std::string> ipv4, Answer<std::string> ipv6);

// The answer for a host that is already an IPv4 or IPv6 address in text form,
// or nullopt for a host name. The TTL is zero: the answer is not from DNS.
std::optional<Answer<std::string>> ip_literal_answer(const std::string& host);

}  // namespace stokend::dns
