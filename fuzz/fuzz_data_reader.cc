// libFuzzer target for the DATA / BDAT body reader.
//
// The first input byte picks a split position and the reader options (NUL
// octets refused or stripped among them); the rest is fed as two reads.
// Invariants checked (abort on violation):
// - consume() never reports more bytes than it was given, and stops early
//   only at the end of the data;
// - the stored message has no bare CR or LF, and no NUL (refused or stripped);
// - without an error, the message fits max_message_size and its lines fit
//   max_line_length;
// - feeding one byte at a time gives exactly the same result;
// - the same holds for BDAT chunks.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>

#include "mta/server/data_reader.h"

namespace {

using stokend::server::DataReader;

void require(bool condition) {
  if (!condition) std::abort();
}

struct Outcome {
  std::size_t consumed = 0;
  bool complete = false;
  DataReader::Error error = DataReader::Error::none;
  std::string message;
  std::size_t size = 0;
  bool operator==(const Outcome&) const = default;
};

Outcome finish(const DataReader& reader, std::size_t consumed) {
  return Outcome{consumed, reader.complete(), reader.error(), reader.message(), reader.size()};
}

std::size_t feed(DataReader& reader, std::string_view part) {
  if (reader.complete()) return 0;
  const std::size_t taken = reader.consume(part);
  require(taken <= part.size());
  if (taken < part.size()) require(reader.complete());
  return taken;
}

void check_message(const Outcome& outcome, const DataReader::Limits& limits) {
  const std::string& message = outcome.message;
  for (std::size_t index = 0; index < message.size(); ++index) {
    if (message[index] == '\r') require(index + 1 < message.size() && message[index + 1] == '\n');
    if (message[index] == '\n') require(index > 0 && message[index - 1] == '\r');
    require(message[index] != '\0');
  }
  if (limits.max_message_size != 0) require(message.size() <= limits.max_message_size);
  if (outcome.error != DataReader::Error::none) return;
  require(message.size() == outcome.size);
  std::size_t line_start = 0;
  while (line_start < message.size()) {
    const std::size_t line_feed = message.find('\n', line_start);
    const std::size_t line_end = line_feed == std::string::npos ? message.size() : line_feed + 1;
    // Only the DATA reader's incomplete tail may lack its CRLF.
    require(line_end - line_start <= limits.max_line_length);
    line_start = line_end;
  }
}

void fuzz_data(std::string_view input, std::size_t split, const DataReader::Limits& limits) {
  DataReader in_two_parts(limits);
  std::size_t consumed = feed(in_two_parts, input.substr(0, split));
  consumed += feed(in_two_parts, input.substr(split));
  const Outcome two_parts = finish(in_two_parts, consumed);
  check_message(two_parts, limits);
  if (two_parts.complete && two_parts.error == DataReader::Error::none) {
    // A complete message ends with CRLF (or is empty).
    require(two_parts.message.empty() || two_parts.message.ends_with("\r\n"));
  }

  DataReader byte_by_byte(limits);
  consumed = 0;
  for (std::size_t index = 0; index < input.size(); ++index) {
    consumed += feed(byte_by_byte, input.substr(index, 1));
  }
  require(finish(byte_by_byte, consumed) == two_parts);
}

void fuzz_chunks(std::string_view input, std::size_t split, const DataReader::Limits& limits) {
  DataReader in_two_chunks(limits);
  in_two_chunks.consume_chunk(input.substr(0, split));
  in_two_chunks.consume_chunk(input.substr(split));
  in_two_chunks.finish_chunks();
  require(in_two_chunks.complete());
  const Outcome two_chunks = finish(in_two_chunks, 0);
  check_message(two_chunks, limits);
  if (two_chunks.error == DataReader::Error::none) {
    require(two_chunks.message.empty() || two_chunks.message.ends_with("\r\n"));
  }

  DataReader byte_by_byte(limits);
  for (std::size_t index = 0; index < input.size(); ++index) {
    byte_by_byte.consume_chunk(input.substr(index, 1));
  }
  byte_by_byte.finish_chunks();
  require(finish(byte_by_byte, 0) == two_chunks);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size == 0) return 0;
  const std::uint8_t control = data[0];
  const std::string_view input(reinterpret_cast<const char*>(data + 1), size - 1);
  // Small limits so that the fuzzer reaches them.
  DataReader::Limits limits;
  limits.max_line_length = 4 + (control & 0x0f);
  limits.max_message_size = (control & 0x10) != 0 ? 0 : 64;
  limits.normalise_bare_line_endings = (control & 0x20) != 0;
  limits.strip_nul_octets = (control & 0x80) != 0;
  const std::size_t split = input.empty() ? 0 : (control * 131u) % (input.size() + 1);
  if ((control & 0x40) != 0) {
    fuzz_chunks(input, split, limits);
  } else {
    fuzz_data(input, split, limits);
  }
  return 0;
}
