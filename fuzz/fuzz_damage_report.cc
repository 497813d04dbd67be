// libFuzzer target for reading damage: the lenient reader of damaged spool
// records (record::read_damaged_record, queue/record_format.h) and the damage
// report lines stokenctl reads back (queue/damage_report.h).
//
// Beyond memory safety (the sanitizers), checks (abort on violation): the
// reader names a sender or recipients only for a message record and never
// more recipients than the input could hold; a report line that parses is
// canonical (formatting it gives back the input exactly) and its fields
// survive another round.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>

#include "queue/damage_report.h"
#include "queue/record_format.h"

namespace {

using namespace stokend;
using namespace stokend::queue;

void require(bool condition) {
  if (!condition) std::abort();
}

bool same(const DamagedRecord& left, const DamagedRecord& right) {
  return left.segment == right.segment && left.file == right.file && left.offset == right.offset &&
         left.length == right.length && left.record == right.record && left.id == right.id &&
         left.sender == right.sender && left.recipients == right.recipients &&
         left.recipients_incomplete == right.recipients_incomplete && left.outcome == right.outcome;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view input(reinterpret_cast<const char*>(data), size);

  const record::DamagedRecordContents contents = record::read_damaged_record(input);
  if (!contents.type || *contents.type != record::RecordType::message) {
    require(!contents.sender && contents.recipients.empty());
  }
  require(contents.recipients.size() * 4 <= size);
  require(contents.id.size() <= size);

  if (const auto parsed = parse_damage_line(input)) {
    const std::string line = format_damage_line(*parsed);
    require(line == input);
    const auto again = parse_damage_line(line);
    require(again && same(*again, *parsed));
    require(!describe(*parsed).empty());
  }
  return 0;
}
