// See alias_file.h.
#include "mta/addresses/alias_file.h"

#include <spdlog/spdlog.h>

#include <cerrno>
#include <cstring>
#include <fstream>
#include <iterator>
#include <system_error>

#include "mta/defaults.h"

namespace stokend::addresses {

ExpansionLimits default_expansion_limits() {
  return ExpansionLimits{defaults::alias_max_depth, defaults::alias_max_recipients};
}

AliasFile::AliasFile(std::filesystem::path file) : file_(std::move(file)) {}

std::vector<std::string> AliasFile::load(std::string_view delimiters) {
  // Stat before reading: a change in between is seen by the next refresh.
  const FileStamp stamp = file_stamp(file_);
  loaded_stamp_ = stamp;
  const std::string name = file_.string();
  std::ifstream stream(file_, std::ios::binary);
  if (!stream) return {name + ": cannot read: " + std::strerror(errno)};
  std::string text;
  text.reserve(static_cast<std::size_t>(stamp.size));
  // One octet past the limit tells a file that is too big.
  std::istreambuf_iterator<char> it(stream), end;
  for (; it != end && text.size() <= defaults::aliases_file_max_size; ++it) text.push_back(*it);
  if (stream.bad()) return {name + ": read error"};
  if (text.size() > defaults::aliases_file_max_size) {
    return {name + ": larger than " + std::to_string(defaults::aliases_file_max_size) + " octets"};
  }
  AliasParseResult parsed = AliasMap::parse(text, name, defaults::aliases_line_max_length);
  if (!parsed.map) return std::move(parsed.errors);
  map_ = std::move(*parsed.map);
  problems_ = map_.problems(delimiters, default_expansion_limits());
  return {};
}

std::vector<std::string> AliasFile::describe_problems() const {
  std::vector<std::string> lines;
  for (const AliasLoop& problem : problems_) {
    const bool loop = problem.chain.size() > 1 && problem.chain.front() == problem.chain.back();
    lines.push_back(file_.string() + ":" + std::to_string(problem.line) + ": " +
                    (loop ? "alias loop: " : "alias chain deeper than the limit: ") +
                    describe_chain(problem.chain) +
                    "; mail for these addresses is deferred (451 4.3.0)");
  }
  return lines;
}

bool AliasFile::refresh_if_changed(std::string_view delimiters) {
  const auto now = std::chrono::steady_clock::now();
  if (last_check_ && now - *last_check_ < std::chrono::seconds(1)) return false;
  last_check_ = now;
  if (file_stamp(file_) == loaded_stamp_) return false;
  const auto errors = load(delimiters);
  for (const std::string& error : errors) {
    spdlog::error("aliases not reloaded, the map in force stays: {}", error);
  }
  if (!errors.empty()) return false;
  spdlog::info("{}: {} aliases loaded", file_.string(), map_.size());
  for (const std::string& line : describe_problems()) spdlog::warn("{}", line);
  return true;
}

}  // namespace stokend::addresses
