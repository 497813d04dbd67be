// See yaml_syntax.h.
#include "mta/config/yaml_syntax.h"

#include <vector>

namespace stokend::config_reading {
namespace {

struct Opener {
  char bracket;
  int line;
  int column;
};

// The first tab in a line's leading whitespace.
std::optional<SyntaxPlace> tab_in_indentation(std::string_view text) {
  int line = 1;
  bool in_indentation = true;
  int column = 1;
  for (char c : text) {
    if (c == '\n') {
      ++line;
      column = 1;
      in_indentation = true;
      continue;
    }
    if (in_indentation && c == '\t') {
      return SyntaxPlace{line, column,
                         "a tab in the indentation: YAML indents with spaces only, replace the "
                         "tab with spaces"};
    }
    if (c != ' ') in_indentation = false;
    ++column;
  }
  return std::nullopt;
}

// The outermost '{' or '[' never closed, skipping quoted text and comments.
// A bracket counts as an opener where a value may start (after ':', ',',
// '-', another opener or at a line's start) or inside a flow already, so a
// plain scalar such as a{b is not taken for one.
std::optional<Opener> unclosed_flow(std::string_view text) {
  std::vector<Opener> open;
  int line = 1;
  int column = 0;
  char quote = '\0';
  bool comment = false;
  char previous = '\n';  // the last character that is not a space
  for (std::size_t i = 0; i < text.size(); ++i) {
    const char c = text[i];
    ++column;
    if (c == '\n') {
      ++line;
      column = 0;
      comment = false;
      // A quoted scalar may span lines inside a flow; in block context an
      // unfinished quote is the parser's own error to report.
      previous = '\n';
      continue;
    }
    if (comment) continue;
    if (quote != '\0') {
      if (quote == '"' && c == '\\') {
        ++i;  // the escaped character, never the closing quote
        ++column;
      } else if (c == quote) {
        if (quote == '\'' && i + 1 < text.size() && text[i + 1] == '\'') {
          ++i;  // '' inside single quotes
          ++column;
        } else {
          quote = '\0';
        }
      }
      continue;
    }
    if (c == ' ' || c == '\t') continue;
    const bool value_may_start = previous == '\n' || previous == ':' || previous == ',' ||
                                 previous == '-' || previous == '{' || previous == '[';
    if (c == '#' && (column == 1 || text[i - 1] == ' ' || text[i - 1] == '\t')) {
      comment = true;
    } else if ((c == '"' || c == '\'') && (value_may_start || !open.empty())) {
      quote = c;
    } else if ((c == '{' || c == '[') && (value_may_start || !open.empty())) {
      open.push_back({c, line, column});
    } else if ((c == '}' || c == ']') && !open.empty()) {
      open.pop_back();
    }
    previous = c;
  }
  if (open.empty()) return std::nullopt;
  return open.front();
}

}  // namespace

std::optional<SyntaxPlace> locate_syntax_error(std::string_view text,
                                               std::string_view parser_message) {
  if (auto tab = tab_in_indentation(text)) return tab;
  if (parser_message.find("flow") == std::string_view::npos) return std::nullopt;
  const auto opener = unclosed_flow(text);
  if (!opener) return std::nullopt;
  const bool map = opener->bracket == '{';
  return SyntaxPlace{opener->line, opener->column,
                     std::string("this '") + opener->bracket + "' is never closed: a flow " +
                         (map ? "map" : "list") + " needs its '" + (map ? '}' : ']') +
                         "' (YAML syntax error: " + std::string(parser_message) + ")"};
}

}  // namespace stokend::config_reading
