// See recipient_delimiter.h.
#include "mta/addresses/recipient_delimiter.h"

namespace stokend::addresses {

std::optional<Extension> split_extension(std::string_view address, std::string_view delimiters) {
  if (delimiters.empty()) return std::nullopt;
  // The domain may not contain '@'; a quoted local part may (RFC 5321 §4.1.2).
  const auto at = address.rfind('@');
  if (at == std::string_view::npos) return std::nullopt;
  const std::string_view local = address.substr(0, at);
  const auto start = local.find_first_of(delimiters);
  if (start == std::string_view::npos || start == 0) return std::nullopt;
  Extension extension;
  extension.base = std::string(local.substr(0, start)) + std::string(address.substr(at));
  extension.suffix = std::string(local.substr(start));
  return extension;
}

std::string with_extension(std::string_view user_address, std::string_view extended,
                           std::string_view delimiters) {
  const auto extension = split_extension(extended, delimiters);
  const auto at = user_address.rfind('@');
  if (!extension || at == std::string_view::npos) return std::string(user_address);
  return std::string(user_address.substr(0, at)) + extension->suffix +
         std::string(user_address.substr(at));
}

bool belongs_to(std::string_view address, std::string_view user, std::string_view delimiters) {
  if (address == user) return true;
  const auto extension = split_extension(address, delimiters);
  return extension && extension->base == user;
}

}  // namespace stokend::addresses
