// Turns a raw DNS response into records of one type, with the c-ares parsers.
//
// Contract: each parser returns an ARES_* status: ARES_SUCCESS with the
// records (possibly none, when the answer section holds only other types),
// ARES_ENODATA when there are no such records, or a parse error such as
// ARES_EBADRESP. CNAME chains in the answer section are followed by c-ares.
// The root name, which c-ares renders as "", comes back as ".".
#pragma once

#include <span>
#include <string>
#include <vector>

#include "dns/resolver.h"

namespace stokend::dns {

int parse_mx_records(std::span<const unsigned char> response, std::vector<MxRecord>& records);
int parse_srv_records(std::span<const unsigned char> response, std::vector<SrvRecord>& records);

// One string per TXT record, its character-strings concatenated.
int parse_txt_records(std::span<const unsigned char> response, std::vector<std::string>& records);

// Addresses as text.
int parse_ipv4_addresses(std::span<const unsigned char> response,
                         std::vector<std::string>& addresses);
int parse_ipv6_addresses(std::span<const unsigned char> response,
                         std::vector<std::string>& addresses);

}  // namespace stokend::dns
