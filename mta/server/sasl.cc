// See sasl.h.
#include "mta/server/sasl.h"

#include <algorithm>

#include "common/base64.h"

namespace stokend::server {

std::optional<PlainCredentials> decode_plain(std::string_view base64) {
  if (base64 == "=") return std::nullopt;
  auto decoded = decode_base64(base64);
  if (!decoded) return std::nullopt;
  std::string_view message = *decoded;
  auto first_nul = message.find('\0');
  if (first_nul == std::string_view::npos) return std::nullopt;
  auto second_nul = message.find('\0', first_nul + 1);
  if (second_nul == std::string_view::npos) return std::nullopt;
  if (message.find('\0', second_nul + 1) != std::string_view::npos) return std::nullopt;
  PlainCredentials credentials{
      std::string(message.substr(0, first_nul)),
      std::string(message.substr(first_nul + 1, second_nul - first_nul - 1)),
      std::string(message.substr(second_nul + 1)),
  };
  if (credentials.authentication_identity.empty() || credentials.password.empty()) {
    return std::nullopt;
  }
  return credentials;
}

}  // namespace stokend::server
