// libFuzzer target for the text helpers of stokenctl's stoken commands
// (admin/stoken_session.h): --server HOST:PORT parsing, the shortening of
// tokens in transcript lines, and the CRLF conversion of a message body.
//
// Beyond memory safety (the sanitizers), checks (abort on violation):
// - parse_host_port: a success has a host and a port 1-65535, and the host
//   and port written back ("[host]" when it holds a ':') parse the same;
// - shorten_tokens_in: the line keeps its words, and no STOKEN= or
//   MYSTOKEN= value longer than 24 octets survives whole in its place;
// - as_crlf_message: every LF follows a CR, the message ends with CRLF, and
//   dropping the CRs it added gives back the input.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>
#include <vector>

#include "admin/stoken_session.h"

namespace {

void check_host_port(std::string_view text) {
  const auto parsed = stokend::admin::parse_host_port(text);
  if (!parsed) return;
  if (parsed->host.empty() || parsed->port == 0) std::abort();
  const std::string again =
      (parsed->host.find(':') != std::string::npos ? "[" + parsed->host + "]" : parsed->host) +
      ":" + std::to_string(parsed->port);
  const auto reparsed = stokend::admin::parse_host_port(again);
  if (!reparsed || reparsed->host != parsed->host || reparsed->port != parsed->port) std::abort();
}

std::vector<std::string_view> words_of(std::string_view line) {
  std::vector<std::string_view> words;
  std::size_t start = 0;
  while (true) {
    std::size_t end = line.find(' ', start);
    if (end == std::string_view::npos) end = line.size();
    words.push_back(line.substr(start, end - start));
    if (end == line.size()) return words;
    start = end + 1;
  }
}

void check_shortening(std::string_view line) {
  const std::string shown = stokend::admin::shorten_tokens_in(line);
  const auto before = words_of(line);
  const auto after = words_of(shown);
  if (before.size() != after.size()) std::abort();
  for (std::size_t i = 0; i < before.size(); ++i) {
    for (std::string_view key : {"STOKEN=", "MYSTOKEN="}) {
      if (before[i].starts_with(key) && before[i].size() - key.size() > 24 &&
          (after[i] == before[i] || !after[i].starts_with(key))) {
        std::abort();
      }
    }
  }
}

void check_crlf(std::string_view text) {
  const std::string message = stokend::admin::as_crlf_message(text);
  if (message.size() < 2 || message.compare(message.size() - 2, 2, "\r\n") != 0) std::abort();
  for (std::size_t i = 0; i < message.size(); ++i) {
    if (message[i] == '\n' && (i == 0 || message[i - 1] != '\r')) std::abort();
  }
  // Undo: drop each CR that the conversion put before a bare LF, and the
  // CRLF it appended to text that did not end in one.
  std::string back;
  for (std::size_t i = 0, j = 0; i < message.size(); ++i) {
    if (j < text.size() && message[i] == text[j]) {
      back += message[i];
      ++j;
    }
  }
  if (back != text) std::abort();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  check_host_port(text);
  check_shortening(text);
  check_crlf(text);
  return 0;
}
