// See capabilities.h.
#include "mta/client/capabilities.h"

#include <charconv>

#include "common/ascii.h"

namespace stokend::client {
bool Capabilities::has(std::string_view keyword) const {
  return keywords.find(ascii_uppercase(keyword)) != keywords.end();
}

bool Capabilities::offers_sasl(std::string_view mechanism) const {
  const auto mechanisms = parameters("AUTH");
  if (!mechanisms) return false;
  const std::string wanted = ascii_uppercase(mechanism);
  std::string_view rest = *mechanisms;
  while (!rest.empty()) {
    const auto space = rest.find(' ');
    if (ascii_uppercase(rest.substr(0, space)) == wanted) return true;
    if (space == std::string_view::npos) break;
    rest.remove_prefix(space + 1);
  }
  return false;
}

std::optional<std::string> Capabilities::parameters(std::string_view keyword) const {
  auto found = keywords.find(ascii_uppercase(keyword));
  if (found == keywords.end()) return std::nullopt;
  return found->second;
}

Capabilities Capabilities::from_hello_reply(const Reply& reply) {
  Capabilities capabilities;
  for (std::size_t i = 1; i < reply.lines.size(); ++i) {
    std::string_view line = reply.lines[i];
    // RFC 5321 §4.1.1.1: ehlo-line = ehlo-keyword *( SP ehlo-param )
    auto space = line.find(' ');
    std::string keyword = ascii_uppercase(line.substr(0, space));
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
