// Unit tests for the DATA / BDAT body reader: the end-of-data rule, the SMTP
// smuggling family, dot-unstuffing, limits, normalisation and chunking.
//
// Every DATA input is read in one piece, one byte at a time and split at
// every position; all ways must give the same result, because TCP may
// deliver the bytes in any grouping.
#include "mta/server/data_reader.h"

#include <catch2/catch.hpp>
#include <string>
#include <string_view>
#include <vector>

using stokend::server::DataReader;
using Error = DataReader::Error;
using namespace std::string_literals;

namespace {

struct Outcome {
  std::size_t consumed = 0;
  bool complete = false;
  Error error = Error::none;
  std::string message;
  std::size_t size = 0;

  bool operator==(const Outcome&) const = default;
};

DataReader::Limits limits(std::size_t max_message_size = 1 << 20,
                          std::size_t max_line_length = 1000, bool normalise = false) {
  DataReader::Limits result;
  result.max_message_size = max_message_size;
  result.max_line_length = max_line_length;
  result.normalise_bare_line_endings = normalise;
  return result;
}

DataReader::Limits normalising() { return limits(1 << 20, 1000, true); }

Outcome outcome_of(const DataReader& reader, std::size_t consumed) {
  return Outcome{consumed, reader.complete(), reader.error(), reader.message(), reader.size()};
}

// Feeds the parts in order, as a session would: stops once the data is
// complete and leaves the rest unconsumed.
Outcome feed_parts(const std::vector<std::string_view>& parts, DataReader::Limits reader_limits) {
  DataReader reader(reader_limits);
  std::size_t consumed = 0;
  for (const auto part : parts) {
    if (reader.complete()) break;
    const std::size_t taken = reader.consume(part);
    REQUIRE(taken <= part.size());
    // Stopping early is only allowed at the end of the data.
    if (taken < part.size()) REQUIRE(reader.complete());
    consumed += taken;
  }
  return outcome_of(reader, consumed);
}

Outcome read_data(std::string_view input, DataReader::Limits reader_limits = limits()) {
  const Outcome at_once = feed_parts({input}, reader_limits);

  std::vector<std::string_view> bytes;
  for (std::size_t index = 0; index < input.size(); ++index) {
    bytes.push_back(input.substr(index, 1));
  }
  CHECK(feed_parts(bytes, reader_limits) == at_once);

  for (std::size_t split = 0; split <= input.size(); ++split) {
    INFO("split at " << split);
    CHECK(feed_parts({input.substr(0, split), input.substr(split)}, reader_limits) == at_once);
  }
  return at_once;
}

// Feeds BDAT chunks and finishes.
Outcome read_chunks(const std::vector<std::string>& chunks,
                    DataReader::Limits reader_limits = limits()) {
  DataReader reader(reader_limits);
  for (const auto& chunk : chunks) reader.consume_chunk(chunk);
  CHECK_FALSE(reader.complete());
  reader.finish_chunks();
  return outcome_of(reader, 0);
}

}  // namespace

TEST_CASE("DATA ends at CRLF.CRLF and the CRLF before the dot belongs to the message") {
  const std::string input = "Subject: hi\r\n\r\nbody\r\n.\r\n";
  const Outcome result = read_data(input);
  CHECK(result.complete);
  CHECK(result.error == Error::none);
  CHECK(result.consumed == input.size());
  CHECK(result.message == "Subject: hi\r\n\r\nbody\r\n");
  CHECK(result.size == result.message.size());
}

TEST_CASE("DATA may end at once when the first line is a dot") {
  const Outcome result = read_data(".\r\n");
  CHECK(result.complete);
  CHECK(result.consumed == 3);
  CHECK(result.message.empty());
  CHECK(result.error == Error::none);
}

TEST_CASE("DATA leaves pipelined commands after the end unconsumed") {
  const std::string body = "a\r\n.\r\n";
  const Outcome result = read_data(body + "QUIT\r\n");
  CHECK(result.complete);
  CHECK(result.consumed == body.size());
  CHECK(result.message == "a\r\n");
}

TEST_CASE("DATA is incomplete until the final LF arrives") {
  for (const std::string input : {"a\r\n", "a\r\n.", "a\r\n.\r", "a\r\n\r\n"}) {
    INFO(input);
    const Outcome result = read_data(input);
    CHECK_FALSE(result.complete);
    CHECK(result.consumed == input.size());
  }
}

TEST_CASE("DATA consumes nothing once complete") {
  DataReader reader(limits());
  CHECK(reader.consume(".\r\n") == 3);
  CHECK(reader.consume("more\r\n.\r\n") == 0);
  CHECK(reader.message().empty());
}

TEST_CASE("DATA removes the leading dot of dot-stuffed lines") {
  const Outcome result = read_data("..\r\n..x\r\n.x\r\n...\r\na.b\r\n a.\r\n.\r\n");
  CHECK(result.complete);
  CHECK(result.error == Error::none);
  CHECK(result.message == ".\r\n.x\r\nx\r\n..\r\na.b\r\n a.\r\n");
}

TEST_CASE("DATA treats a stuffed dot line as content, not as the end") {
  const Outcome result = read_data("a\r\n..\r\nb\r\n.\r\n");
  CHECK(result.message == "a\r\n.\r\nb\r\n");
}

namespace {

// The bytes of a smuggling attempt sit between "hello" and a forged
// command; the real end comes later and a pipelined QUIT follows it.
const std::string smuggling_prefix = "Subject: x\r\n\r\nhello";
const std::string smuggled = "MAIL FROM:<evil@example.net>\r\n";
const std::string real_end = "\r\n.\r\n";

std::string smuggling_input(const std::string& sequence) {
  return smuggling_prefix + sequence + smuggled + real_end.substr(2) + "QUIT\r\n";
}

}  // namespace

TEST_CASE("DATA refuses every bare line ending smuggling sequence and finds the real end") {
  const std::vector<std::string> sequences = {
      "\n.\n",   "\n.\r\n",  "\r.\n",    "\r.\r",        "\r.\r\n",       "\r\n.\n",
      "\r\n.\r", "\n.\0\n"s, "\r.\0\r"s, "\r\n.\r\0\n"s, "\r\0\n.\r\0\n"s};
  for (const auto& sequence : sequences) {
    INFO("sequence " << Catch::Detail::stringify(sequence));
    const std::string input = smuggling_input(sequence);
    const Outcome result = read_data(input);
    CHECK(result.complete);
    CHECK(result.error == Error::bare_line_ending);
    // The end found is the real one, after the forged command; QUIT is left.
    CHECK(result.consumed == input.size() - std::string("QUIT\r\n").size());
    // Nothing after the error is stored.
    CHECK(result.message.find("evil") == std::string::npos);
    CHECK(input.compare(0, smuggling_prefix.size(), result.message, 0, smuggling_prefix.size()) ==
          0);
  }
}

TEST_CASE("DATA refuses NUL octets, finds the real end, and a dot with NUL never ends the data") {
  for (const std::string& sequence : {"\r\n.\0\r\n"s, "\r\n\0.\r\n"s, "\r\n\0\r\n"s}) {
    INFO("sequence " << Catch::Detail::stringify(sequence));
    const std::string input = smuggling_input(sequence);
    const Outcome result = read_data(input);
    CHECK(result.complete);
    CHECK(result.error == Error::nul_octet);
    CHECK(result.consumed == input.size() - std::string("QUIT\r\n").size());
    // Nothing from the NUL on is stored.
    CHECK(result.message.find('\0') == std::string::npos);
    CHECK(result.message.find("evil") == std::string::npos);
  }
  CHECK(read_data("a\0b\r\n.\r\n"s).error == Error::nul_octet);
  CHECK(read_data("\0\r\n.\r\n"s).error == Error::nul_octet);
  // A bare line ending is the finding reported, before or after a NUL: a
  // NUL must not hide a smuggling attempt.
  CHECK(read_data("a\nb\0\r\n.\r\n"s).error == Error::bare_line_ending);
  CHECK(read_data("a\0b\nc\r\n.\r\n"s).error == Error::bare_line_ending);
  CHECK(read_data("a\r\n\0.\nc\r\n.\r\n"s).error == Error::bare_line_ending);
  // Other errors do not replace the NUL error.
  CHECK(read_data("a\0"s + std::string(2000, 'x') + "\r\n.\r\n").error == Error::nul_octet);
}

namespace {

DataReader::Limits stripping() {
  DataReader::Limits result = limits();
  result.strip_nul_octets = true;
  return result;
}

}  // namespace

TEST_CASE("DATA strips NUL octets when configured; they are no part of the message") {
  const Outcome result = read_data("Subject: a\0b\r\n\r\n\0\0x\0\r\n.\r\nQUIT\r\n"s, stripping());
  CHECK(result.complete);
  CHECK(result.error == Error::none);
  CHECK(result.message == "Subject: ab\r\n\r\nx\r\n");
  CHECK(result.size == result.message.size());
  DataReader reader(stripping());
  reader.consume("a\0b\0\0\r\n.\r\n"s);
  CHECK(reader.nul_octets_stripped() == 3);
  DataReader refusing(limits());
  refusing.consume("a\0b\r\n.\r\n"s);
  CHECK(refusing.nul_octets_stripped() == 0);
  // Stripping happens after SMTP framing: ".\0" is a stuffed line (the dot
  // is removed as transparency requires), "\0." is a line ".", neither is
  // the end of the data.
  const Outcome framing = read_data("a\r\n.\0\r\n\0.\r\n.\r\n"s, stripping());
  CHECK(framing.complete);
  CHECK(framing.message == "a\r\n\r\n.\r\n");
  // NULs do not count toward the line length either.
  DataReader::Limits short_lines = stripping();
  short_lines.max_line_length = 5;
  CHECK(read_data("abc\0\0\0\r\n.\r\n"s, short_lines).error == Error::none);
  CHECK(read_data("abcd\r\n.\r\n"s, short_lines).error == Error::line_too_long);
}
TEST_CASE("DATA normalises bare line endings to CRLF when configured, never ending the data") {
  const std::vector<std::string> sequences = {"\n.\n",   "\n.\r\n", "\r.\n",  "\r.\r",
                                              "\r.\r\n", "\r\n.\n", "\r\n.\r"};
  for (const auto& sequence : sequences) {
    INFO("sequence " << Catch::Detail::stringify(sequence));
    const std::string input = smuggling_input(sequence);
    const Outcome result = read_data(input, normalising());
    CHECK(result.complete);
    CHECK(result.error == Error::none);
    CHECK(result.consumed == input.size() - std::string("QUIT\r\n").size());
    // Every variant stores the lone dot as a line of its own.
    CHECK(result.message == smuggling_prefix + "\r\n.\r\n" + smuggled);
  }
}

TEST_CASE("Normalising keeps CR CR LF as two line endings and does not unstuff after a bare one") {
  CHECK(read_data("a\nb\rc\r\n.\r\n", normalising()).message == "a\r\nb\r\nc\r\n");
  CHECK(read_data("a\r\r\n.\r\n", normalising()).message == "a\r\n\r\n");
  CHECK(read_data("\n.\r\n.\r\n", normalising()).message == "\r\n.\r\n");
  CHECK(read_data("a\n..b\r\n..c\r\n.\r\n", normalising()).message == "a\r\n..b\r\n.c\r\n");
}

TEST_CASE("DATA refuses a line over the limit, counted with CRLF after unstuffing") {
  const auto ten_octet_lines = limits(1 << 20, 10);
  const Outcome fits = read_data("12345678\r\n..2345678\r\n.\r\n", ten_octet_lines);
  CHECK(fits.error == Error::none);
  CHECK(fits.message == "12345678\r\n.2345678\r\n");

  const std::string too_long = "ok\r\n123456789\r\nafter\r\n.\r\nNOOP\r\n";
  const Outcome refused = read_data(too_long, ten_octet_lines);
  CHECK(refused.error == Error::line_too_long);
  CHECK(refused.complete);
  CHECK(refused.consumed == too_long.size() - 6);
  CHECK(refused.message.find("after") == std::string::npos);
}

TEST_CASE("DATA refuses a message over the size limit but still finds the end") {
  const Outcome exact = read_data("12345678\r\n.\r\n", limits(10));
  CHECK(exact.error == Error::none);
  CHECK(exact.size == 10);

  const Outcome over = read_data("123456789\r\nmore\r\n.\r\n", limits(10));
  CHECK(over.complete);
  CHECK(over.error == Error::message_too_large);
  CHECK(over.size == 17);  // counting goes on after the error
  CHECK(over.message.size() <= 10);

  // The CRLF of the last line counts too.
  CHECK(read_data("123456789\r\n.\r\n", limits(10)).error == Error::message_too_large);
  // Stuffed dots do not count.
  CHECK(read_data("..345678\r\n.\r\n", limits(9)).error == Error::none);
}

TEST_CASE("DATA keeps only the first error") {
  const Outcome result = read_data("a\nb\r\n" + std::string(2000, 'x') + "\r\n.\r\n");
  CHECK(result.error == Error::bare_line_ending);
  const Outcome second = read_data(std::string(2000, 'x') + "\r\na\nb\r\n.\r\n");
  CHECK(second.error == Error::line_too_long);
}

TEST_CASE("DATA memory stays bounded after an error") {
  DataReader reader(limits(1 << 20, 1000));
  reader.consume("start\n");
  const std::string line(998, 'x');
  for (int count = 0; count < 5000; ++count) reader.consume(line + "\r\n");
  CHECK(reader.error() == Error::bare_line_ending);
  CHECK(reader.message().size() <= 5);
  CHECK(reader.size() > 4'000'000);
  CHECK(reader.consume(".\r\n") == 3);
  CHECK(reader.complete());
}

TEST_CASE("DATA reads a large message in large pieces") {
  std::string input;
  std::string expected;
  for (int count = 0; count < 100000; ++count) {
    const std::string line = (count % 7 == 0 ? "." : "") + std::string(70, 'a' + count % 26);
    input += (count % 7 == 0 ? "." : "") + line + "\r\n";
    expected += line + "\r\n";
  }
  input += ".\r\n";
  DataReader reader(limits(35 << 20));
  CHECK(reader.consume(input) == input.size());
  CHECK(reader.complete());
  CHECK(reader.error() == Error::none);
  CHECK(reader.message() == expected);
  CHECK(reader.take_message() == expected);
  CHECK(reader.message().empty());
}

TEST_CASE("BDAT chunks may split CRLF and need no dot processing") {
  const Outcome result = read_chunks({"abc\r", "\ndef\r\n", ".\r\n..x\r\n"});
  CHECK(result.error == Error::none);
  CHECK(result.complete);
  CHECK(result.message == "abc\r\ndef\r\n.\r\n..x\r\n");
}

TEST_CASE("BDAT refuses bare line endings, also across chunk boundaries") {
  CHECK(read_chunks({"abc\r", "def\r\n"}).error == Error::bare_line_ending);
  CHECK(read_chunks({"abc\n"}).error == Error::bare_line_ending);
  CHECK(read_chunks({"abc\r"}).error == Error::bare_line_ending);
  CHECK(read_chunks({"abc\r", "\r\n"}).error == Error::bare_line_ending);
  CHECK(read_chunks({"abc\r", "", "\n"}).error == Error::none);
}

TEST_CASE("BDAT refuses NUL octets like DATA, or strips them when configured") {
  CHECK(read_chunks({"abc\r\n", "d\0e\r\n"s}).error == Error::nul_octet);
  CHECK(read_chunks({"abc\r"s, "\0\n"s}).error == Error::bare_line_ending);
  CHECK(read_chunks({"\0"s}).error == Error::nul_octet);
  const Outcome stripped = read_chunks({"a\0b\r"s, "\n\0"s, "c\0"s}, stripping());
  CHECK(stripped.error == Error::none);
  CHECK(stripped.message == "ab\r\nc\r\n");
  CHECK(stripped.size == stripped.message.size());
}

TEST_CASE("BDAT normalises when configured") {
  CHECK(read_chunks({"a\nb\r", "c\r"}, normalising()).message == "a\r\nb\r\nc\r\n");
}

TEST_CASE("BDAT ends an unterminated last line with CRLF, counted in the size") {
  const Outcome result = read_chunks({"abc"});
  CHECK(result.message == "abc\r\n");
  CHECK(result.size == 5);
  CHECK(read_chunks({}).message.empty());
  CHECK(read_chunks({"abc"}, limits(4)).error == Error::message_too_large);
}

TEST_CASE("BDAT applies line length and size limits across chunks") {
  CHECK(read_chunks({"12345", "6789\r\n"}, limits(100, 10)).error == Error::line_too_long);
  CHECK(read_chunks({"1234", "5678\r\n"}, limits(100, 10)).error == Error::none);
  const Outcome big = read_chunks({"12345\r\n", "12345\r\n"}, limits(13));
  CHECK(big.error == Error::message_too_large);
  CHECK(big.message == "12345\r\n12345");
}
