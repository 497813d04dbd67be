// The aliases map (setting `aliases`): which addresses stand for others, in
// the text format of Postfix's virtual(5) table:
//
//     # comment
//     postmaster@example.test   alice@example.test
//     team@example.test         alice@example.test, bob@example.test
//     list@example.test         carol@example.test
//         dave@elsewhere.test                        (continues the line above)
//     @example.test             catchall@example.test
//
// A key is an address or "@domain", the domain's catch-all; its targets,
// separated by commas and/or whitespace, are addresses of local or remote
// domains. A line that starts with whitespace continues the one before.
// Keys and targets are compared and kept lowercase.
//
// Lookup (Postfix virtual's order): the address as written, then the
// address without its extension (recipient_delimiter.h), then, when asked
// for, the domain's catch-all. Expansion is recursive: a target that is
// itself a key is expanded in turn (exact address or without extension;
// catch-alls apply only to the address a client gave). A target equal to
// the address being expanded is delivered as it is ("a -> a, b" keeps a
// copy for a, as in Postfix).
//
// Contract: parse() never throws and reports every bad line as
// "FILE:LINE: what is wrong"; a map with any error is not made. expand()
// is bounded: a chain deeper than max_depth, a loop (a target that is its
// own ancestor) or more than max_recipients final addresses stop it with
// that status, never with a partial list to deliver. Immutable once made;
// safe to read from any thread.
#pragma once

#include <cstddef>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace stokend::addresses {

struct ExpansionLimits {
  std::size_t max_depth = 0;       // keys followed in one chain
  std::size_t max_recipients = 0;  // final addresses of one expansion
};

struct Expansion {
  enum class Status { not_aliased, expanded, loop, too_deep, too_many };
  Status status = Status::not_aliased;
  std::vector<std::string> recipients;  // expanded: each final address once, in order
  std::vector<std::string> chain;       // loop, too_deep: the addresses followed, in order
};

// "a -> b -> a": a chain for a log line or a reply.
std::string describe_chain(const std::vector<std::string>& chain);

// A loop found among the keys when the map was made.
struct AliasLoop {
  int line = 0;  // the line of the key the loop was found from
  std::vector<std::string> chain;
};

struct AliasParseResult;

class AliasMap {
 public:
  AliasMap() = default;

  static AliasParseResult parse(std::string_view text, std::string_view file_name,
                                std::size_t max_line_length);

  // The targets of the first key that matches address (lowercase), or null.
  const std::vector<std::string>* find(std::string_view address, std::string_view delimiters,
                                       bool catch_all) const;

  Expansion expand(std::string_view address, std::string_view delimiters, bool catch_all,
                   const ExpansionLimits& limits) const;

  // Every loop among the keys (each reported once, from its first key in
  // file order) and every chain deeper than the limit: what the operator is
  // told when the map is loaded.
  std::vector<AliasLoop> problems(std::string_view delimiters, const ExpansionLimits& limits) const;

  std::size_t size() const { return entries_.size(); }
  bool empty() const { return entries_.empty(); }

 private:
  struct Entry {
    std::vector<std::string> targets;
    int line = 0;
  };
  std::map<std::string, Entry, std::less<>> entries_;
};

struct AliasParseResult {
  std::optional<AliasMap> map;      // set only when errors is empty
  std::vector<std::string> errors;  // "FILE:LINE: message", in file order
};

}  // namespace stokend::addresses
