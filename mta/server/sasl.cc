// See sasl.h.
#include "mta/server/sasl.h"

#include <sodium.h>

#include <algorithm>

namespace stokend::server {

std::optional<std::string> decode_base64(std::string_view text) {
  if (text.empty()) return std::string{};
  std::string decoded(text.size() / 4 * 3 + 3, '\0');
  std::size_t decoded_length = 0;
  const char* end = nullptr;
  if (sodium_base642bin(reinterpret_cast<unsigned char*>(decoded.data()), decoded.size(),
                        text.data(), text.size(), nullptr, &decoded_length, &end,
                        sodium_base64_VARIANT_ORIGINAL) != 0 ||
      end != text.data() + text.size()) {
    return std::nullopt;
  }
  decoded.resize(decoded_length);
  return decoded;
}

std::string encode_base64(std::string_view data) {
  std::string encoded(sodium_base64_encoded_len(data.size(), sodium_base64_VARIANT_ORIGINAL), '\0');
  sodium_bin2base64(encoded.data(), encoded.size(),
                    reinterpret_cast<const unsigned char*>(data.data()), data.size(),
                    sodium_base64_VARIANT_ORIGINAL);
  encoded.resize(encoded.size() - 1);  // the terminating NUL
  return encoded;
}

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
