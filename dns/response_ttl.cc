// A bounds-checked walk over the sections of a DNS message (RFC 1035 section
// 4.1), reading only record headers and, for SOA, the MINIMUM field.
#include "dns/response_ttl.h"

#include <algorithm>

#include "dns/record_type.h"

namespace stokend::dns {
namespace {

constexpr std::size_t header_size = 12;
constexpr std::uint32_t largest_valid_ttl = 0x7fffffff;

class MessageReader {
 public:
  explicit MessageReader(std::span<const unsigned char> message) : message_(message) {}

  bool ok() const { return ok_; }
  std::size_t position() const { return position_; }
  void seek(std::size_t position) {
    if (position > message_.size()) ok_ = false;
    position_ = std::min(position, message_.size());
  }

  std::uint16_t read_16() {
    if (!has(2)) return 0;
    std::uint16_t value =
        static_cast<std::uint16_t>(message_[position_] << 8 | message_[position_ + 1]);
    position_ += 2;
    return value;
  }

  std::uint32_t read_32() {
    std::uint32_t high = read_16();
    return high << 16 | read_16();
  }

  // Steps over a domain name in place: labels up to the root label, or up to
  // a compression pointer (RFC 1035 section 4.1.4), which ends the name here.
  void skip_name() {
    while (has(1)) {
      unsigned char length = message_[position_];
      if ((length & 0xc0) == 0xc0) {
        seek(position_ + 2);
        return;
      }
      if ((length & 0xc0) != 0) {  // reserved label types (RFC 6891 section 5)
        ok_ = false;
        return;
      }
      seek(position_ + 1 + length);
      if (length == 0) return;
    }
  }

 private:
  bool has(std::size_t count) {
    if (!ok_ || message_.size() - position_ < count) ok_ = false;
    return ok_;
  }

  std::span<const unsigned char> message_;
  std::size_t position_ = 0;
  bool ok_ = true;
};

struct RecordHeader {
  RecordType type;
  std::uint32_t ttl;
  std::size_t data_start;
  std::size_t data_end;
};

std::uint32_t valid_ttl(std::uint32_t ttl) { return ttl > largest_valid_ttl ? 0 : ttl; }

RecordHeader read_record_header(MessageReader& reader) {
  reader.skip_name();
  RecordType type = static_cast<RecordType>(reader.read_16());
  reader.read_16();  // class
  std::uint32_t ttl = valid_ttl(reader.read_32());
  std::uint16_t data_length = reader.read_16();
  std::size_t data_start = reader.position();
  reader.seek(data_start + data_length);
  return RecordHeader{type, ttl, data_start, data_start + data_length};
}

struct SectionCounts {
  std::uint16_t questions;
  std::uint16_t answers;
  std::uint16_t authorities;
};

// Reads the header and steps over the question section.
std::optional<SectionCounts> skip_to_answers(MessageReader& reader) {
  reader.seek(4);
  SectionCounts counts{reader.read_16(), reader.read_16(), reader.read_16()};
  reader.seek(header_size);
  for (int question = 0; question < counts.questions && reader.ok(); ++question) {
    reader.skip_name();
    reader.read_32();  // type and class
  }
  if (!reader.ok()) return std::nullopt;
  return counts;
}

}  // namespace

std::optional<std::uint32_t> lowest_answer_ttl(std::span<const unsigned char> response) {
  MessageReader reader(response);
  std::optional<SectionCounts> counts = skip_to_answers(reader);
  if (!counts) return std::nullopt;
  std::optional<std::uint32_t> lowest;
  for (int answer = 0; answer < counts->answers; ++answer) {
    RecordHeader record = read_record_header(reader);
    if (!reader.ok()) return std::nullopt;
    lowest = std::min(lowest.value_or(record.ttl), record.ttl);
  }
  return lowest;
}

std::optional<std::uint32_t> negative_answer_ttl(std::span<const unsigned char> response) {
  MessageReader reader(response);
  std::optional<SectionCounts> counts = skip_to_answers(reader);
  if (!counts) return std::nullopt;
  for (int answer = 0; answer < counts->answers; ++answer) read_record_header(reader);
  for (int authority = 0; authority < counts->authorities && reader.ok(); ++authority) {
    RecordHeader record = read_record_header(reader);
    if (!reader.ok()) return std::nullopt;
    if (record.type != RecordType::soa) continue;
    // SOA data: MNAME, RNAME, then SERIAL, REFRESH, RETRY, EXPIRE, MINIMUM.
    MessageReader soa(response);
    soa.seek(record.data_start);
    soa.skip_name();
    soa.skip_name();
    soa.seek(soa.position() + 4 * 4);
    std::uint32_t minimum = valid_ttl(soa.read_32());
    if (!soa.ok() || soa.position() > record.data_end) return std::nullopt;
    return std::min(record.ttl, minimum);
  }
  return std::nullopt;
}

}  // namespace stokend::dns
