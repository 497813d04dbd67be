// Unit tests for the command line reader: CRLF framing, bare CR / LF,
// the line length limit with draining, and reads split anywhere.
#include "mta/server/line_reader.h"

#include <catch2/catch.hpp>
#include <string>
#include <string_view>
#include <vector>

using stokend::server::LineReader;
using Status = LineReader::Status;

namespace {

// One event with the line it carried (empty unless Status::line).
struct Event {
  Status status;
  std::string line;
  bool operator==(const Event&) const = default;
};

// Feeds the parts in order, calling next() until each is used up, and
// collects every event other than need_more.
std::vector<Event> read_lines(const std::vector<std::string_view>& parts,
                              std::size_t max_line_length) {
  LineReader reader(max_line_length);
  std::vector<Event> events;
  for (auto part : parts) {
    while (!part.empty()) {
      std::size_t consumed = 0;
      const Status status = reader.next(part, consumed);
      REQUIRE(consumed <= part.size());
      part.remove_prefix(consumed);
      if (status == Status::need_more) {
        REQUIRE(part.empty());
        break;
      }
      REQUIRE(consumed > 0);
      events.push_back({status, status == Status::line ? reader.line() : ""});
    }
  }
  return events;
}

// Reads the input in one piece, and checks that one byte at a time and every
// split in two give the same events.
std::vector<Event> read_all_ways(std::string_view input, std::size_t max_line_length = 512) {
  const auto at_once = read_lines({input}, max_line_length);
  std::vector<std::string_view> bytes;
  for (std::size_t index = 0; index < input.size(); ++index) {
    bytes.push_back(input.substr(index, 1));
  }
  CHECK(read_lines(bytes, max_line_length) == at_once);
  for (std::size_t split = 0; split <= input.size(); ++split) {
    INFO("split at " << split);
    CHECK(read_lines({input.substr(0, split), input.substr(split)}, max_line_length) == at_once);
  }
  return at_once;
}

Event line(std::string text) { return {Status::line, std::move(text)}; }
const Event too_long{Status::too_long, ""};
const Event bad_ending{Status::bad_line_ending, ""};

}  // namespace

TEST_CASE("Lines end with CRLF and are returned without it") {
  CHECK(read_all_ways("EHLO a\r\nMAIL FROM:<>\r\n\r\n") ==
        std::vector<Event>{line("EHLO a"), line("MAIL FROM:<>"), line("")});
}

TEST_CASE("next() stops after one line and leaves pipelined input") {
  LineReader reader(512);
  std::size_t consumed = 0;
  const std::string input = "RSET\r\nNOOP\r\n";
  CHECK(reader.next(input, consumed) == Status::line);
  CHECK(consumed == 6);
  CHECK(reader.line() == "RSET");
  CHECK_FALSE(reader.has_partial_line());
  CHECK(reader.next(std::string_view(input).substr(6), consumed) == Status::line);
  CHECK(reader.line() == "NOOP");
}

TEST_CASE("A partial line waits for more input") {
  LineReader reader(512);
  std::size_t consumed = 0;
  CHECK(reader.next("QU", consumed) == Status::need_more);
  CHECK(consumed == 2);
  CHECK(reader.has_partial_line());
  CHECK(reader.next("IT\r", consumed) == Status::need_more);
  CHECK(reader.next("\n", consumed) == Status::line);
  CHECK(reader.line() == "QUIT");
}

TEST_CASE("A bare LF or bare CR makes the line invalid") {
  CHECK(read_all_ways("MAIL FROM:<a@b>\nRCPT TO:<c@d>\r\n") ==
        std::vector<Event>{bad_ending, line("RCPT TO:<c@d>")});
  CHECK(read_all_ways("NO\rOP\r\nQUIT\r\n") == std::vector<Event>{bad_ending, line("QUIT")});
  CHECK(read_all_ways("NOOP\r\r\n") == std::vector<Event>{bad_ending});
  CHECK(read_all_ways("\n") == std::vector<Event>{bad_ending});
  CHECK(read_all_ways("\r\rA\r\n") == std::vector<Event>{bad_ending});
}

TEST_CASE("NUL bytes are passed through as line content") {
  const std::string input("A\0B\r\n", 5);
  CHECK(read_all_ways(input) == std::vector<Event>{line(std::string("A\0B", 3))});
}

TEST_CASE("The limit counts CRLF; longer lines are refused and drained") {
  // max 10: 8 octets + CRLF fit, 9 do not.
  CHECK(read_all_ways("12345678\r\n", 10) == std::vector<Event>{line("12345678")});
  CHECK(read_all_ways("123456789\r\nNOOP\r\n", 10) == std::vector<Event>{too_long, line("NOOP")});
  CHECK(read_all_ways(std::string(5000, 'x') + "\r\nQUIT\r\n", 10) ==
        std::vector<Event>{too_long, line("QUIT")});
  // Draining ends at the next LF, even a bare one.
  CHECK(read_all_ways("12345678901\nQUIT\r\n", 10) == std::vector<Event>{too_long, line("QUIT")});
}

TEST_CASE("Too long is reported as soon as the limit is passed") {
  LineReader reader(10);
  std::size_t consumed = 0;
  CHECK(reader.next("123456789", consumed) == Status::need_more);
  CHECK(reader.next("0abcdef", consumed) == Status::too_long);
  CHECK(consumed == 1);
  CHECK(reader.has_partial_line());  // still draining
  CHECK(reader.next("bcdef\r\n", consumed) == Status::need_more);
  CHECK(consumed == 7);
  CHECK_FALSE(reader.has_partial_line());
}

TEST_CASE("reset() forgets a partial line") {
  LineReader reader(512);
  std::size_t consumed = 0;
  CHECK(reader.next("STARTTLS\r\nMAIL FR", consumed) == Status::line);
  CHECK(reader.next("MAIL FR", consumed) == Status::need_more);
  CHECK(reader.has_partial_line());
  reader.reset();
  CHECK_FALSE(reader.has_partial_line());
  CHECK(reader.next("EHLO x\r\n", consumed) == Status::line);
  CHECK(reader.line() == "EHLO x");
}

TEST_CASE("reset() also stops draining an overlong line") {
  LineReader reader(10);
  std::size_t consumed = 0;
  CHECK(reader.next("12345678901234", consumed) == Status::too_long);
  reader.reset();
  CHECK(reader.next("NOOP\r\n", consumed) == Status::line);
  CHECK(reader.line() == "NOOP");
}
