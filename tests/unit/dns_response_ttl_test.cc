// Tests of TTL extraction from raw DNS responses (RFC 1035 section 4.1,
// RFC 2308 section 5), on messages built byte by byte.
#include <catch2/catch.hpp>
#include <cstdint>
#include <initializer_list>
#include <string>
#include <vector>

#include "dns/response_ttl.h"

using namespace stokend;
using namespace stokend::dns;

namespace {

class MessageBuilder {
 public:
  MessageBuilder(std::uint16_t answers, std::uint16_t authorities) {
    add_16(0x1234);  // id
    add_16(0x8180);  // response, recursion desired and available
    add_16(1);       // one question
    add_16(answers);
    add_16(authorities);
    add_16(0);  // additional
    add_name("a.test");
    add_16(15);  // MX
    add_16(1);   // IN
  }

  void add_16(std::uint16_t value) {
    bytes.push_back(static_cast<unsigned char>(value >> 8));
    bytes.push_back(static_cast<unsigned char>(value));
  }
  void add_32(std::uint32_t value) {
    add_16(static_cast<std::uint16_t>(value >> 16));
    add_16(static_cast<std::uint16_t>(value));
  }
  void add_name(const std::string& name) {
    std::size_t start = 0;
    while (start < name.size()) {
      std::size_t end = name.find('.', start);
      if (end == std::string::npos) end = name.size();
      bytes.push_back(static_cast<unsigned char>(end - start));
      bytes.insert(bytes.end(), name.begin() + start, name.begin() + end);
      start = end + 1;
    }
    bytes.push_back(0);
  }
  void add_pointer_to_question_name() { add_16(0xc00c); }

  // A record owned by the question name (compressed), with the given data.
  void add_record(std::uint16_t type, std::uint32_t ttl, const std::vector<unsigned char>& data) {
    add_pointer_to_question_name();
    add_16(type);
    add_16(1);
    add_32(ttl);
    add_16(static_cast<std::uint16_t>(data.size()));
    bytes.insert(bytes.end(), data.begin(), data.end());
  }

  void add_soa(std::uint32_t ttl, std::uint32_t minimum) {
    add_pointer_to_question_name();
    add_16(6);
    add_16(1);
    add_32(ttl);
    std::size_t length_at = bytes.size();
    add_16(0);
    std::size_t data_start = bytes.size();
    add_name("ns.a.test");
    add_pointer_to_question_name();  // RNAME, compressed
    for (std::uint32_t field : {1u, 7200u, 3600u, 1209600u}) add_32(field);
    add_32(minimum);
    std::size_t length = bytes.size() - data_start;
    bytes[length_at] = static_cast<unsigned char>(length >> 8);
    bytes[length_at + 1] = static_cast<unsigned char>(length);
  }

  std::vector<unsigned char> bytes;
};

const std::vector<unsigned char> mx_data = {0, 10, 2, 'm', 'x', 0xc0, 0x0c};

}  // namespace

TEST_CASE("the answer TTL is the lowest in the answer section", "[dns]") {
  MessageBuilder message(3, 0);
  message.add_record(15, 3600, mx_data);
  message.add_record(5, 120, {0xc0, 0x0c});  // a CNAME in the chain
  message.add_record(15, 900, mx_data);
  CHECK(lowest_answer_ttl(message.bytes) == 120u);
  CHECK_FALSE(negative_answer_ttl(message.bytes).has_value());
}

TEST_CASE("an answer TTL with the top bit set counts as zero", "[dns]") {
  MessageBuilder message(1, 0);
  message.add_record(15, 0x80000000u, mx_data);
  CHECK(lowest_answer_ttl(message.bytes) == 0u);
}

TEST_CASE("no answers, no answer TTL", "[dns]") {
  MessageBuilder message(0, 0);
  CHECK_FALSE(lowest_answer_ttl(message.bytes).has_value());
  CHECK_FALSE(negative_answer_ttl(message.bytes).has_value());
}

TEST_CASE("a negative answer's TTL is the lower of the SOA TTL and MINIMUM", "[dns]") {
  SECTION("MINIMUM lower") {
    MessageBuilder message(0, 1);
    message.add_soa(3600, 300);
    CHECK(negative_answer_ttl(message.bytes) == 300u);
  }
  SECTION("SOA TTL lower") {
    MessageBuilder message(0, 1);
    message.add_soa(30, 300);
    CHECK(negative_answer_ttl(message.bytes) == 30u);
  }
  SECTION("after an NS record and a CNAME answer") {
    MessageBuilder message(1, 2);
    message.add_record(5, 60, {0xc0, 0x0c});
    message.add_record(2, 60, {0xc0, 0x0c});
    message.add_soa(600, 900);
    CHECK(negative_answer_ttl(message.bytes) == 600u);
  }
}

TEST_CASE("truncated or malformed responses give no TTL", "[dns]") {
  MessageBuilder message(1, 1);
  message.add_record(15, 300, mx_data);
  std::size_t answers_end = message.bytes.size();
  message.add_soa(600, 60);
  REQUIRE(lowest_answer_ttl(message.bytes) == 300u);
  REQUIRE(negative_answer_ttl(message.bytes) == 60u);
  for (std::size_t length = 0; length < message.bytes.size(); ++length) {
    std::span<const unsigned char> cut(message.bytes.data(), length);
    CHECK_FALSE(negative_answer_ttl(cut).has_value());
    if (length < answers_end) CHECK_FALSE(lowest_answer_ttl(cut).has_value());
  }

  MessageBuilder reserved_label(1, 0);
  reserved_label.bytes.push_back(0x40);  // a label type RFC 6891 retired
  CHECK_FALSE(lowest_answer_ttl(reserved_label.bytes).has_value());
}
