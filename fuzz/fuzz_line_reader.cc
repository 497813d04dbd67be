// libFuzzer target for the command line reader.
//
// The first input byte picks the line limit, whether AUTH lines get a longer
// limit (RFC 4954 §4), and a split position; the rest is read in two parts
// and one byte at a time. Invariants checked (abort on violation): next()
// never reports more bytes than it was given, makes progress on every event,
// returns need_more only with all input used, a returned line has no CR, LF
// or NUL and fits the limit (an AUTH line: the AUTH limit), auth_too_long
// comes only with an AUTH limit, and both ways of feeding give the same
// events.
#include <cctype>
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>
#include <vector>

#include "mta/server/line_reader.h"

namespace {

using stokend::server::LineReader;

void require(bool condition) {
  if (!condition) std::abort();
}

struct Event {
  LineReader::Status status;
  std::string line;
  bool operator==(const Event&) const = default;
};

bool is_auth_line(const std::string& line) {
  if (line.size() < 5) return false;
  std::string verb = line.substr(0, 5);
  for (char& c : verb) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
  return verb == "AUTH ";
}

void read_part(LineReader& reader, std::string_view part, std::size_t max_line_length,
               std::size_t auth_line_length, std::vector<Event>& events) {
  while (!part.empty()) {
    std::size_t consumed = 0;
    const LineReader::Status status = reader.next(part, consumed);
    require(consumed <= part.size());
    part.remove_prefix(consumed);
    if (status == LineReader::Status::need_more) {
      require(part.empty());
      return;
    }
    require(consumed > 0);
    std::string line;
    if (status == LineReader::Status::line) {
      line = reader.line();
      require(line.find('\r') == std::string::npos && line.find('\n') == std::string::npos);
      require(line.find('\0') == std::string::npos);
      require(line.size() + 2 <= max_line_length ||
              (auth_line_length != 0 && is_auth_line(line) && line.size() + 2 <= auth_line_length));
    }
    if (status == LineReader::Status::auth_too_long) require(auth_line_length != 0);
    events.push_back({status, std::move(line)});
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size == 0) return 0;
  const std::uint8_t control = data[0];
  const std::string_view input(reinterpret_cast<const char*>(data + 1), size - 1);
  const std::size_t max_line_length = 2 + (control & 0x1f);
  const std::size_t auth_line_length = (control & 0x20) != 0 ? 2 * max_line_length + 3 : 0;
  const std::size_t split = input.empty() ? 0 : (control * 131u) % (input.size() + 1);

  LineReader in_two_parts(max_line_length);
  in_two_parts.set_auth_line_length(auth_line_length);
  std::vector<Event> two_parts;
  read_part(in_two_parts, input.substr(0, split), max_line_length, auth_line_length, two_parts);
  read_part(in_two_parts, input.substr(split), max_line_length, auth_line_length, two_parts);

  LineReader byte_by_byte(max_line_length);
  byte_by_byte.set_auth_line_length(auth_line_length);
  std::vector<Event> bytes;
  for (std::size_t index = 0; index < input.size(); ++index) {
    read_part(byte_by_byte, input.substr(index, 1), max_line_length, auth_line_length, bytes);
  }
  require(bytes == two_parts);
  require(in_two_parts.has_partial_line() == byte_by_byte.has_partial_line());
  return 0;
}
