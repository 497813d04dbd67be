// libFuzzer target for the YAML syntax error locator
// (mta/config/yaml_syntax.h), which reads a configuration file's raw text
// after the YAML parser failed on it.
//
// The first input byte picks the parser message it is given (a flow error
// or another), the rest is the file's text. Beyond memory safety (the
// sanitizers), checks (abort on violation): a place it returns is inside the
// text (line within the text's line count, column at least 1) and carries a
// message.
#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string_view>

#include "mta/config/yaml_syntax.h"

namespace {

void require(bool condition) {
  if (!condition) std::abort();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size == 0) return 0;
  const std::string_view message =
      data[0] % 2 == 0 ? "end of map flow not found" : "illegal map value";
  const std::string_view text(reinterpret_cast<const char*>(data + 1), size - 1);
  const auto place = stokend::config_reading::locate_syntax_error(text, message);
  if (!place) return 0;
  const auto lines = static_cast<int>(std::count(text.begin(), text.end(), '\n')) + 1;
  require(place->line >= 1 && place->line <= lines);
  require(place->column >= 1);
  require(!place->message.empty());
  return 0;
}
