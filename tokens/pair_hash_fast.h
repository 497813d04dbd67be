// pair_hash() for the verification path: the same SHA3-256 digest of
// norm(remote) ":" norm(local), computed with the algorithm fetched from
// OpenSSL once and a digest context kept per thread, and without building
// the joined, lowercased string.
//
// Why: verify() hashes the pair of every token it checks, and pair_hash()
// (pair_hash.cc, EVP_Digest with EVP_sha3_256()) looks the algorithm up in
// OpenSSL's provider tables and allocates a context and two strings on every
// call, which took about half of a whole verification
// (bench/token_verify.cc). pair_hash() calls this; the unit tests check it
// against sha3_256() of the joined string and against fixed vectors.
//
// Contract: thread-safe; throws std::runtime_error only if OpenSSL has no
// SHA3-256 (a broken installation).
#pragma once

#include <string_view>

#include "tokens/pair_hash.h"

namespace stokend::tokens {

Sha3Digest pair_hash_fast(std::string_view remote_address, std::string_view local_address);

}  // namespace stokend::tokens
