// Where a YAML syntax error really is, for the mistakes yaml-cpp reports at
// a misleading place or in misleading words: a tab in the indentation
// ("illegal map value" on the line's key, YAML 1.2 §6.1: indentation is
// spaces only) and an unclosed '{' or '[' (reported where the parser gave
// up, lines later, YAML 1.2 §7.4-7.5).
//
// Contract: pure function on the file's text, never throws; called only
// after the parser failed. Returns nothing when neither mistake explains the
// failure, so the parser's own message and place stand. Lines and columns
// are 1-based.
#pragma once

#include <optional>
#include <string>
#include <string_view>

namespace stokend::config_reading {

struct SyntaxPlace {
  int line = 0;
  int column = 0;
  std::string message;
};

std::optional<SyntaxPlace> locate_syntax_error(std::string_view text,
                                               std::string_view parser_message);

}  // namespace stokend::config_reading
