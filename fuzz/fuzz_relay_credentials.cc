// libFuzzer target for the smarthost credentials parser
// (mta/relay_credentials.h).
//
// Beyond memory safety (the sanitizers), checks (abort on violation): a
// failure carries an error naming a line and no map; a success has no error,
// and every entry has a "[host]:port" key, a login without ':' or control
// characters, and a non-empty password without control characters.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>

#include "mta/relay_credentials.h"

namespace {

bool has_control(std::string_view text) {
  for (char c : text) {
    if (static_cast<unsigned char>(c) < 0x20 || c == 0x7f) return true;
  }
  return false;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  std::string error;
  const auto map = stokend::parse_relay_credentials(text, error);
  if (!map) {
    if (!error.starts_with("line ")) std::abort();
    return 0;
  }
  if (!error.empty()) std::abort();
  for (const auto& [key, credentials] : *map) {
    if (key.size() < 4 || key.front() != '[' || key.find("]:") == std::string::npos) std::abort();
    if (credentials.login.empty() || credentials.login.find(':') != std::string::npos ||
        has_control(credentials.login)) {
      std::abort();
    }
    if (credentials.password.empty() || has_control(credentials.password)) std::abort();
  }
  return 0;
}
