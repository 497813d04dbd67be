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

// Feeds one piece of input to a reader that keeps its state between pieces.
std::vector<Event> collect(LineReader& reader, std::string_view input) {
  std::vector<Event> events;
  while (!input.empty()) {
    std::size_t consumed = 0;
    const Status status = reader.next(input, consumed);
    input.remove_prefix(consumed);
    if (status == Status::need_more) break;
    events.push_back({status, status == Status::line ? reader.line() : ""});
  }
  return events;
}
const Event too_long{Status::too_long, ""};
const Event bad_ending{Status::bad_line_ending, ""};
const Event nul_octet{Status::nul_octet, ""};
const Event auth_too_long{Status::auth_too_long, ""};

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

TEST_CASE("A NUL octet makes the line invalid, reported at its end") {
  using namespace std::string_literals;
  CHECK(read_all_ways("NOOP a\0b\r\nQUIT\r\n"s) == std::vector<Event>{nul_octet, line("QUIT")});
  CHECK(read_all_ways("EHLO foo\0bar\r\n"s) == std::vector<Event>{nul_octet});
  CHECK(read_all_ways("\0\r\n"s) == std::vector<Event>{nul_octet});
  // A bare line ending is the graver fault and is reported first.
  CHECK(read_all_ways("A\0\nB\r\n"s) == std::vector<Event>{bad_ending, line("B")});
}

TEST_CASE("An AUTH line and a SASL response may reach the AUTH limit (RFC 4954 4)") {
  // Ordinary limit 10, AUTH limit 20: "AUTH PLAIN 1234567" + CRLF is 20 octets.
  auto read_auth = [](std::string_view input) {
    LineReader reader(10);
    reader.set_auth_line_length(20);
    return collect(reader, input);
  };
  CHECK(read_auth("AUTH PLAIN 1234567\r\n") == std::vector<Event>{line("AUTH PLAIN 1234567")});
  CHECK(read_auth("auth plain 12345678\r\nNOOP\r\n") ==
        std::vector<Event>{auth_too_long, line("NOOP")});
  // Only AUTH: another verb keeps the ordinary limit, and so does "AUTHX".
  CHECK(read_auth("NOOP 123456\r\n") == std::vector<Event>{too_long});
  CHECK(read_auth("AUTHX 1234\r\n") == std::vector<Event>{too_long});
  // A very long AUTH line is drained wholly: nothing of it is a command.
  CHECK(read_auth("AUTH " + std::string(5000, 'A') + "\rQUIT\r\nNOOP\r\n") ==
        std::vector<Event>{auth_too_long, line("NOOP")});

  LineReader reader(10);
  reader.set_auth_line_length(20);
  reader.expect_sasl_response();
  CHECK(collect(reader, "123456789012345678\r\n") ==
        std::vector<Event>{line("123456789012345678")});
  // The exception holds for one line only.
  CHECK(collect(reader, "123456789012\r\n\r\n") == std::vector<Event>{too_long, line("")});
  reader.expect_sasl_response();
  std::size_t consumed = 0;
  CHECK(reader.next("1234567890123456789\r\nNOOP\r\n", consumed) == Status::auth_too_long);
  CHECK(consumed == 20);  // reported as soon as the AUTH limit is passed
  CHECK(collect(reader, "\r\nNOOP\r\n") == std::vector<Event>{line("NOOP")});
  // reset() (STARTTLS) forgets a pending SASL response.
  reader.expect_sasl_response();
  reader.reset();
  CHECK(collect(reader, "123456789012\r\n") == std::vector<Event>{too_long});
}

TEST_CASE("Without an AUTH limit an AUTH line is an ordinary line") {
  CHECK(read_all_ways("AUTH PLAIN 1234\r\nNOOP\r\n", 10) ==
        std::vector<Event>{too_long, line("NOOP")});
}

TEST_CASE("Whether a line is AUTH does not depend on how the input is split") {
  auto events = [](const std::vector<std::string_view>& parts) {
    LineReader reader(10);
    reader.set_auth_line_length(20);
    std::vector<Event> result;
    for (const auto part : parts) {
      for (auto& event : collect(reader, part)) result.push_back(std::move(event));
    }
    return result;
  };
  for (const std::string_view input :
       {"AUTH PLAIN 1234\r\nAUTH x\r\n", "AUTH PLAIN 123\r\nNOOP 1234567\r\n",
        "AUTHAUTHAUTH\r\nAUTH 1234567890123456\r\n"}) {
    const auto at_once = events({input});
    std::vector<std::string_view> bytes;
    for (std::size_t index = 0; index < input.size(); ++index)
      bytes.push_back(input.substr(index, 1));
    CHECK(events(bytes) == at_once);
    for (std::size_t split = 0; split <= input.size(); ++split) {
      INFO("split at " << split);
      CHECK(events({input.substr(0, split), input.substr(split)}) == at_once);
    }
  }
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
