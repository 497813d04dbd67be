// See capabilities.h.
#include "mta/client/capabilities.h"

#include <charconv>

namespace stokend::client {
namespace {

std::string uppercase(std::string_view text) {
  std::string upper(text);
  for (char& c : upper) {
    if (c >= 'a' && c <= 'z') c = static_cast<char>(c - 'a' + 'A');
  }
  return upper;
}

}  // namespace

bool Capabilities::has(std::string_view keyword) const {
  return keywords.find(uppercase(keyword)) != keywords.end();
}

std::optional<std::string> Capabilities::parameters(std::string_view keyword) const {
  auto found = keywords.find(uppercase(keyword));
  if (found == keywords.end()) return std::nullopt;
  return found->second;
}

Capabilities Capabilities::from_hello_reply(const Reply& reply) {
  Capabilities capabilities;
  for (std::size_t i = 1; i < reply.lines.size(); ++i) {
    std::string_view line = reply.lines[i];
    // RFC 5321 §4.1.1.1: ehlo-line = ehlo-keyword *( SP ehlo-param )
    auto space = line.find(' ');
    std::string keyword = uppercase(line.substr(0, space));
    std::string parameters =
        space == std::string_view::npos ? std::string{} : std::string(line.substr(space + 1));
    if (keyword.empty()) continue;
    capabilities.keywords[keyword] = parameters;
  }
  capabilities.pipelining = capabilities.has("PIPELINING");
  capabilities.eight_bit_mime = capabilities.has("8BITMIME");
  capabilities.smtputf8 = capabilities.has("SMTPUTF8");
  capabilities.starttls = capabilities.has("STARTTLS");
  capabilities.chunking = capabilities.has("CHUNKING");
  capabilities.enhanced_status_codes = capabilities.has("ENHANCEDSTATUSCODES");
  capabilities.dsn = capabilities.has("DSN");
  if (auto size = capabilities.parameters("SIZE")) {
    capabilities.size_announced = true;
    std::uint64_t limit = 0;
    auto [end, error] = std::from_chars(size->data(), size->data() + size->size(), limit);
    // A missing or unreadable value is taken as "no fixed limit".
    if (error == std::errc{} && end == size->data() + size->size()) {
      capabilities.size_limit = limit;
    }
  }
  return capabilities;
}

}  // namespace stokend::client
