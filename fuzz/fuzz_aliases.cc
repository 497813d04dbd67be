// libFuzzer target for the aliases map (mta/addresses/alias_map.h): its
// virtual(5)-style parser and the bounded recursive expansion.
//
// Beyond memory safety (the sanitizers), checks (abort on violation): a
// failure makes no map and every error names the file and a line; a map
// answers every expansion within its limits: the address of each line's
// first word (with and without the catch-all, with the delimiter "+") is
// either not aliased, expanded to at most max_recipients distinct
// lowercase addresses, or stopped with an empty list (a loop's chain ends
// with an address it holds earlier; a chain too deep is one longer than
// max_depth).
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <set>
#include <string>
#include <string_view>

#include "mta/addresses/alias_map.h"

namespace {

using stokend::addresses::AliasMap;
using stokend::addresses::Expansion;
using stokend::addresses::ExpansionLimits;

constexpr ExpansionLimits limits{6, 20};

void check(const AliasMap& map, std::string_view address, bool catch_all) {
  const Expansion expansion = map.expand(address, "+", catch_all, limits);
  switch (expansion.status) {
    case Expansion::Status::not_aliased:
      if (!expansion.recipients.empty()) std::abort();
      break;
    case Expansion::Status::expanded: {
      if (expansion.recipients.empty() || expansion.recipients.size() > limits.max_recipients) {
        std::abort();
      }
      std::set<std::string> seen;
      for (const std::string& recipient : expansion.recipients) {
        if (!seen.insert(recipient).second) std::abort();
        if (recipient.find('@') == std::string::npos) std::abort();
        for (char c : recipient) {
          if (c >= 'A' && c <= 'Z') std::abort();
        }
      }
      break;
    }
    case Expansion::Status::loop: {
      if (!expansion.recipients.empty() || expansion.chain.size() < 2) std::abort();
      bool earlier = false;
      for (std::size_t i = 0; i + 1 < expansion.chain.size(); ++i) {
        earlier = earlier || expansion.chain[i] == expansion.chain.back();
      }
      if (!earlier) std::abort();
      break;
    }
    case Expansion::Status::too_deep:
      if (!expansion.recipients.empty() || expansion.chain.size() != limits.max_depth + 1) {
        std::abort();
      }
      break;
    case Expansion::Status::too_many:
      if (!expansion.recipients.empty()) std::abort();
      break;
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  auto parsed = AliasMap::parse(text, "f", 512);
  if (!parsed.map) {
    if (parsed.errors.empty()) std::abort();
    for (const std::string& error : parsed.errors) {
      if (!error.starts_with("f:") || error.size() < 4 || error[2] < '1' || error[2] > '9') {
        std::abort();
      }
    }
    return 0;
  }
  if (!parsed.errors.empty()) std::abort();
  const AliasMap& map = *parsed.map;
  static_cast<void>(map.problems("+", limits));
  std::size_t start = 0;
  while (start < text.size()) {
    std::size_t end = text.find('\n', start);
    if (end == std::string_view::npos) end = text.size();
    const std::string_view line = text.substr(start, end - start);
    const std::string_view word = line.substr(0, line.find_first_of(" \t,"));
    if (!word.empty()) {
      check(map, word, false);
      check(map, word, true);
    }
    start = end + 1;
  }
  return 0;
}
