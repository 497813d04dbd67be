// See local_users.h.
#include "mta/addresses/local_users.h"

#include <memory>
#include <utility>

#include "common/ascii.h"
#include "mta/addresses/recipient_delimiter.h"

namespace stokend::addresses {

const User* find_local_user(const UserLookup& users, std::string_view address,
                            std::string_view delimiters) {
  if (const User* user = users.find(address)) return user;
  const auto extension = split_extension(address, delimiters);
  return extension ? users.find(extension->base) : nullptr;
}

std::optional<UserAnswer> lookup_local_user(UserLookup& users, const std::string& address,
                                            std::string_view delimiters,
                                            UserLookup::AnswerCallback done) {
  auto extension = split_extension(address, delimiters);
  if (!extension) return users.lookup(address, std::move(done));
  // Both questions may be answered later; whichever answers last calls done.
  auto shared_done = std::make_shared<UserLookup::AnswerCallback>(std::move(done));
  auto forward = [shared_done](const UserAnswer& answer) { (*shared_done)(answer); };
  UserLookup* directory = &users;
  auto exact = users.lookup(
      address, [directory, base = extension->base, shared_done, forward](const UserAnswer& later) {
        if (later.status != UserAnswer::Status::unknown) return (*shared_done)(later);
        // Not inside lookup_local_user() any more: an immediate answer goes on now.
        if (auto answer = directory->lookup(base, forward)) (*shared_done)(*answer);
      });
  if (!exact) return std::nullopt;
  if (exact->status != UserAnswer::Status::unknown) return exact;
  return users.lookup(extension->base, forward);
}

std::string delivery_address(const User& user, const std::string& address,
                             std::string_view delimiters) {
  if (ascii_lowercase(user.address) == address) return address;
  return with_extension(user.address, address, delimiters);
}

}  // namespace stokend::addresses
