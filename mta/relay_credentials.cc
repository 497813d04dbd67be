// See relay_credentials.h.
#include "mta/relay_credentials.h"

#include <sys/stat.h>

#include <cerrno>
#include <cstring>
#include <fstream>
#include <sstream>

#include "common/ascii.h"

namespace stokend {
namespace {

constexpr std::size_t max_file_size = 1 << 20;  // a map of next hops, not a mailbox

bool is_blank(char c) { return c == ' ' || c == '\t'; }

std::string_view trim(std::string_view text) {
  while (!text.empty() && (is_blank(text.front()) || text.front() == '\r')) text.remove_prefix(1);
  while (!text.empty() && (is_blank(text.back()) || text.back() == '\r')) text.remove_suffix(1);
  return text;
}

// "[host]:port" with a non-empty host and a port 1-65535; the host is
// checked by the route it must match, not here.
std::optional<std::string> parse_key(std::string_view key) {
  const std::size_t close = key.find(']');
  if (key.size() < 4 || key.front() != '[' || close == std::string_view::npos || close == 1 ||
      close + 1 >= key.size() || key[close + 1] != ':') {
    return std::nullopt;
  }
  const auto port = parse_decimal(key.substr(close + 2));
  if (!port || *port < 1 || *port > 65535) return std::nullopt;
  return relay_credentials_key(key.substr(1, close - 1), static_cast<std::uint16_t>(*port));
}

}  // namespace

std::string relay_credentials_key(std::string_view host, std::uint16_t port) {
  return "[" + ascii_lowercase(host) + "]:" + std::to_string(port);
}

std::optional<RelayCredentialMap> parse_relay_credentials(std::string_view text,
                                                          std::string& error) {
  RelayCredentialMap map;
  std::size_t line_number = 0;
  while (!text.empty()) {
    const std::size_t end = text.find('\n');
    std::string_view line = trim(text.substr(0, end));
    text.remove_prefix(end == std::string_view::npos ? text.size() : end + 1);
    ++line_number;
    if (line.empty() || line.front() == '#') continue;
    const std::string where = "line " + std::to_string(line_number) + ": ";
    std::size_t blank = 0;
    while (blank < line.size() && !is_blank(line[blank])) ++blank;
    const auto key = parse_key(line.substr(0, blank));
    if (!key) {
      error = where + "expected [host]:port at the start of the line";
      return std::nullopt;
    }
    const std::string_view value = trim(line.substr(blank));
    const std::size_t colon = value.find(':');
    if (value.empty() || colon == std::string_view::npos || colon == 0 ||
        colon + 1 == value.size()) {
      error = where + "expected login:password after " + *key;
      return std::nullopt;
    }
    for (char c : value) {
      if (static_cast<unsigned char>(c) < 0x20 || c == 0x7f) {
        error = where + "control character in the credentials of " + *key;
        return std::nullopt;
      }
    }
    RelayCredentials credentials{std::string(value.substr(0, colon)),
                                 std::string(value.substr(colon + 1))};
    if (!map.emplace(*key, std::move(credentials)).second) {
      error = where + "second entry for " + *key;
      return std::nullopt;
    }
  }
  return map;
}

std::optional<RelayCredentialMap> load_relay_credentials(const std::filesystem::path& path,
                                                         std::string& error) {
  struct stat status {};
  if (::stat(path.c_str(), &status) != 0) {
    error = path.string() + ": " + std::strerror(errno);
    return std::nullopt;
  }
  if (!S_ISREG(status.st_mode)) {
    error = path.string() + ": not a regular file";
    return std::nullopt;
  }
  if ((status.st_mode & 077) != 0) {
    // The file holds passwords for another system: like ssh with a private
    // key, refuse rather than use a secret others may have read.
    char mode[8];
    std::snprintf(mode, sizeof mode, "%04o", static_cast<unsigned>(status.st_mode & 07777));
    error = path.string() + ": mode " + mode +
            " lets group or others read it; it holds passwords (chmod 600 " + path.string() + ")";
    return std::nullopt;
  }
  if (static_cast<std::uintmax_t>(status.st_size) > max_file_size) {
    error = path.string() + ": larger than 1 MiB";
    return std::nullopt;
  }
  std::ifstream file(path, std::ios::binary);
  std::ostringstream content;
  content << file.rdbuf();
  if (!file) {
    error = path.string() + ": cannot be read";
    return std::nullopt;
  }
  std::string parse_error;
  auto map = parse_relay_credentials(content.str(), parse_error);
  if (!map) error = path.string() + ": " + parse_error;
  return map;
}

}  // namespace stokend
