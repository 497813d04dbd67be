// The aliases file (setting `aliases`): the map of alias_map.h as read from
// its file, read again when the file changes, as the users file is.
//
// Contract: loop thread only. load() reads the whole file (at most
// defaults::aliases_file_max_size octets); on any error it returns every
// error ("FILE:LINE: message") and keeps the map loaded before, so a
// broken edit never takes the aliases away. A loop among the keys or a
// chain deeper than the limit does not refuse the file (the rest of the map
// works; those addresses answer 451 at RCPT): it is listed by problems(),
// and described, one line naming the chain, by describe_problems(). refresh_if_changed() looks
// at the file at most once a second and loads it when its identity, size
// or time changed; a failed load is logged and not retried until the file
// changes again.
#pragma once

#include <chrono>
#include <cstdint>
#include <filesystem>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "common/file_stamp.h"
#include "mta/addresses/alias_map.h"

namespace stokend::addresses {

// The limits of every expansion: defaults::alias_max_depth and
// defaults::alias_max_recipients.
ExpansionLimits default_expansion_limits();

class AliasFile {
 public:
  explicit AliasFile(std::filesystem::path file);

  std::vector<std::string> load(std::string_view delimiters);
  bool refresh_if_changed(std::string_view delimiters);  // true when it loaded a new map

  const AliasMap& map() const { return map_; }
  const std::vector<AliasLoop>& problems() const { return problems_; }
  // One line per problem, naming FILE:LINE and the chain: for the log
  // (refresh_if_changed() logs them itself) or the operator's terminal.
  std::vector<std::string> describe_problems() const;
  const std::filesystem::path& file() const { return file_; }

 private:
  std::filesystem::path file_;
  AliasMap map_;
  std::vector<AliasLoop> problems_;
  FileStamp loaded_stamp_;
  std::optional<std::chrono::steady_clock::time_point> last_check_;
};

}  // namespace stokend::addresses
