// Pair hash and COI-From-Hash against vectors computed independently
// (Python hashlib.sha3_256 + base64 without padding).
#include "tokens/pair_hash.h"

#include <catch2/catch.hpp>

using namespace stokend;
using namespace stokend::tokens;

TEST_CASE("pair hash is SHA3-256 of remote:local, base64 without padding") {
  CHECK(base64_unpadded(pair_hash("bob@b.test", "alice@a.test")) ==
        "9ukUrVN2u4vljV8L+m7A6GwfqUeE63mINJ/aHoj3Rj8");
}

TEST_CASE("pair hash normalises case of local part and domain") {
  CHECK(pair_hash("Bob@B.Test", "ALICE@a.TEST") == pair_hash("bob@b.test", "alice@a.test"));
}

TEST_CASE("pair hash depends on direction") {
  CHECK(pair_hash("bob@b.test", "alice@a.test") != pair_hash("alice@a.test", "bob@b.test"));
}

TEST_CASE("COI-From-Hash is SHA3-256 of the normalised address") {
  CHECK(base64_unpadded(coi_from_hash("Alice@A.test")) ==
        "zrV1SRauTzZfKBFCWr1sivQ9gxj1YZUPY6DOloKzl4I");
}
