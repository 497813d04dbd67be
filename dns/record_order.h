// The orders in which a sender tries the hosts named by MX and SRV records.
//
// Contract: both functions return the same records, reordered; they use the
// given random generator for the random parts, so tests can make them
// repeatable. random_generator() is a generator seeded once per thread.
#pragma once

#include <random>
#include <vector>

#include "dns/resolver.h"

namespace stokend::dns {

// RFC 5321 section 5.1: lowest preference first; hosts of equal preference in
// random order, to spread the load among them.
std::vector<MxRecord> order_mail_exchangers(std::vector<MxRecord> records, std::mt19937& random);

// RFC 2782: lowest priority first; within a priority, a weighted random order
// in which a record's chance to come next is proportional to its weight, and
// weight 0 records come last except by rare chance.
std::vector<SrvRecord> order_service_records(std::vector<SrvRecord> records, std::mt19937& random);

std::mt19937& random_generator();

}  // namespace stokend::dns
