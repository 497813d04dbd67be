// See alias_map.h: the parser of the virtual(5)-style text and the bounded
// expansion.
#include "mta/addresses/alias_map.h"

#include <algorithm>
#include <set>
#include <utility>

#include "common/ascii.h"
#include "message/address.h"
#include "mta/addresses/recipient_delimiter.h"

namespace stokend::addresses {
namespace {

bool is_blank(char c) { return c == ' ' || c == '\t'; }

// The words of a logical line: separated by whitespace and commas; a
// double-quoted local part ("a b"@example.test) is one word with its quotes.
std::optional<std::vector<std::string>> split_words(std::string_view line, std::string& error) {
  std::vector<std::string> words;
  std::string word;
  bool quoted = false;
  for (std::size_t i = 0; i < line.size(); ++i) {
    const char c = line[i];
    if (quoted) {
      word += c;
      if (c == '\\' && i + 1 < line.size()) {
        word += line[++i];
      } else if (c == '"') {
        quoted = false;
      }
    } else if (is_blank(c) || c == ',') {
      if (!word.empty()) words.push_back(std::move(word));
      word.clear();
    } else {
      if (c == '"') quoted = true;
      word += c;
    }
  }
  if (quoted) {
    error = "unterminated quoted local part";
    return std::nullopt;
  }
  if (!word.empty()) words.push_back(std::move(word));
  return words;
}

// A target or an address key: local@domain (RFC 5321 §4.1.2, with UTF-8
// as RFC 6531 allows), lowercase; nullopt with the reason otherwise.
std::optional<std::string> address_of(std::string_view word, std::string& error) {
  auto mailbox = message::parse_mailbox(word, true);
  if (!mailbox) {
    error = "'" + std::string(word) + "' is not an address (local@domain)";
    return std::nullopt;
  }
  if (mailbox->domain_is_literal) {
    error = "'" + std::string(word) + "': address literals are not supported";
    return std::nullopt;
  }
  return mailbox->normalized();
}

// A key: an address, or "@domain" for the domain's catch-all.
std::optional<std::string> key_of(std::string_view word, std::string& error) {
  if (word.size() > 1 && word.front() == '@') {
    std::string ignored;
    if (!address_of("catchall" + std::string(word), ignored)) {
      error = "'" + std::string(word) + "' is not a domain's catch-all (@domain)";
      return std::nullopt;
    }
    return ascii_lowercase(word);
  }
  return address_of(word, error);
}

std::string domain_of(std::string_view address) {
  const auto at = address.rfind('@');
  return at == std::string_view::npos ? std::string() : std::string(address.substr(at));
}

// One expansion: a depth-first walk over the keys.
class Walk {
 public:
  Walk(const AliasMap& map, std::string_view delimiters, const ExpansionLimits& limits,
       Expansion& out)
      : map_(map), delimiters_(delimiters), limits_(limits), out_(out) {}

  // False when the walk stopped (out_.status says why).
  bool visit(const std::string& address, std::size_t depth, bool catch_all) {
    const std::vector<std::string>* targets = map_.find(address, delimiters_, catch_all);
    if (!targets) return emit(address);
    if (expanded_.contains(address)) return true;  // its addresses are in already
    if (depth >= limits_.max_depth) {
      out_.status = Expansion::Status::too_deep;
      out_.chain = path_;
      out_.chain.push_back(address);
      return false;
    }
    path_.push_back(address);
    for (const std::string& target : *targets) {
      if (target == address) {
        if (!emit(target)) return false;
      } else if (std::find(path_.begin(), path_.end(), target) != path_.end()) {
        out_.status = Expansion::Status::loop;
        out_.chain = path_;
        out_.chain.push_back(target);
        return false;
      } else if (!visit(target, depth + 1, false)) {
        return false;
      }
    }
    path_.pop_back();
    expanded_.insert(address);
    return true;
  }

 private:
  bool emit(const std::string& address) {
    if (!emitted_.insert(address).second) return true;
    if (out_.recipients.size() >= limits_.max_recipients) {
      out_.status = Expansion::Status::too_many;
      return false;
    }
    out_.recipients.push_back(address);
    return true;
  }

  const AliasMap& map_;
  std::string_view delimiters_;
  const ExpansionLimits& limits_;
  Expansion& out_;
  std::vector<std::string> path_;
  std::set<std::string> expanded_;
  std::set<std::string> emitted_;
};

}  // namespace

std::string describe_chain(const std::vector<std::string>& chain) {
  std::string text;
  for (const std::string& address : chain) text += (text.empty() ? "" : " -> ") + address;
  return text;
}

AliasParseResult AliasMap::parse(std::string_view text, std::string_view file_name,
                                 std::size_t max_line_length) {
  AliasParseResult result;
  AliasMap map;
  const std::string file(file_name);
  auto error_at = [&](int line, const std::string& message) {
    result.errors.push_back(file + ":" + std::to_string(line) + ": " + message);
  };

  // Logical lines: a physical line that starts with whitespace continues
  // the one before (postmap(1)'s text format).
  struct Logical {
    int line = 0;
    std::string text;
  };
  std::vector<Logical> logical;
  int number = 0;
  std::size_t start = 0;
  while (start < text.size()) {
    auto end = text.find('\n', start);
    if (end == std::string_view::npos) end = text.size();
    std::string_view line = text.substr(start, end - start);
    start = end + 1;
    ++number;
    if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
    const auto first = line.find_first_not_of(" \t");
    if (first == std::string_view::npos || line[first] == '#') continue;
    if (std::any_of(line.begin(), line.end(), [](char c) {
          return (static_cast<unsigned char>(c) < 0x20 && c != '\t') || c == 0x7f;
        })) {
      error_at(number, "control character in the line");
      continue;
    }
    if (first > 0 && !logical.empty()) {
      logical.back().text += ' ';
      logical.back().text += line;
    } else if (first > 0) {
      error_at(number, "continuation line without a line to continue");
      continue;
    } else {
      logical.push_back({number, std::string(line)});
    }
    if (logical.back().text.size() > max_line_length) {
      error_at(logical.back().line,
               "line longer than " + std::to_string(max_line_length) + " octets");
      logical.pop_back();
    }
  }

  for (const Logical& entry : logical) {
    std::string error;
    auto words = split_words(entry.text, error);
    if (!words) {
      error_at(entry.line, error);
      continue;
    }
    if (words->empty()) {  // only separators, e.g. ","
      error_at(entry.line, "no key");
      continue;
    }
    auto key = key_of(words->front(), error);
    if (!key) {
      error_at(entry.line, "key " + error);
      continue;
    }
    if (words->size() < 2) {
      error_at(entry.line, *key + " has no target");
      continue;
    }
    Entry parsed;
    parsed.line = entry.line;
    bool good = true;
    for (std::size_t i = 1; i < words->size(); ++i) {
      auto target = address_of((*words)[i], error);
      if (!target) {
        error_at(entry.line, "target " + error);
        good = false;
        break;
      }
      if (std::find(parsed.targets.begin(), parsed.targets.end(), *target) ==
          parsed.targets.end()) {
        parsed.targets.push_back(std::move(*target));
      }
    }
    if (!good) continue;
    if (const auto known = map.entries_.find(*key); known != map.entries_.end()) {
      error_at(entry.line,
               *key + " is already a key on line " + std::to_string(known->second.line));
      continue;
    }
    map.entries_.emplace(std::move(*key), std::move(parsed));
  }
  if (result.errors.empty()) result.map = std::move(map);
  return result;
}

const std::vector<std::string>* AliasMap::find(std::string_view address,
                                               std::string_view delimiters, bool catch_all) const {
  if (auto exact = entries_.find(address); exact != entries_.end()) return &exact->second.targets;
  if (const auto extension = split_extension(address, delimiters)) {
    if (auto base = entries_.find(extension->base); base != entries_.end()) {
      return &base->second.targets;
    }
  }
  if (catch_all) {
    const std::string domain = domain_of(address);
    if (auto all = entries_.find(domain); !domain.empty() && all != entries_.end()) {
      return &all->second.targets;
    }
  }
  return nullptr;
}

Expansion AliasMap::expand(std::string_view address, std::string_view delimiters, bool catch_all,
                           const ExpansionLimits& limits) const {
  Expansion expansion;
  const std::string start = ascii_lowercase(address);
  if (!find(start, delimiters, catch_all)) return expansion;
  expansion.status = Expansion::Status::expanded;
  Walk walk(*this, delimiters, limits, expansion);
  if (!walk.visit(start, 0, catch_all)) expansion.recipients.clear();
  return expansion;
}

std::vector<AliasLoop> AliasMap::problems(std::string_view delimiters,
                                          const ExpansionLimits& limits) const {
  std::vector<std::pair<int, std::string>> keys;  // in file order
  for (const auto& [key, entry] : entries_) {
    if (key.front() != '@') keys.emplace_back(entry.line, key);
  }
  std::sort(keys.begin(), keys.end());
  std::vector<AliasLoop> found;
  std::set<std::set<std::string>> reported;  // a loop's members, whichever key found it
  for (const auto& [line, key] : keys) {
    const Expansion expansion = expand(key, delimiters, false, limits);
    if (expansion.status == Expansion::Status::loop) {
      // The loop proper: from the first occurrence of the repeated address.
      const auto begin =
          std::find(expansion.chain.begin(), expansion.chain.end(), expansion.chain.back());
      const std::set<std::string> members(begin, expansion.chain.end());
      if (!reported.insert(members).second) continue;
      found.push_back({line, std::vector<std::string>(begin, expansion.chain.end())});
    } else if (expansion.status == Expansion::Status::too_deep) {
      found.push_back({line, expansion.chain});
    }
  }
  return found;
}

}  // namespace stokend::addresses
