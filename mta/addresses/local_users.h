// Who a local address belongs to, with address extensions
// (recipient_delimiter.h): alice+news@ is alice's unless a user is called
// alice+news. Every place that looks a local recipient up goes through
// here: RCPT on the MX and submission roles, the Token Server's RCPT, a
// recipient a milter adds, and final delivery into the built-in Maildir.
//
// Contract: as UserLookup (mta/user_lookup.h), on the loop thread. The
// address as given is asked first, then the address without its extension
// (Postfix's order), so an answer may be for the base address: the caller
// puts the extension back with with_extension(). A temporary failure of the
// first question is the answer (never a guess from the second). `done` runs
// later, never inside lookup_local_user(); `users` outlives the lookup.
#pragma once

#include <optional>
#include <string>
#include <string_view>

#include "mta/user_lookup.h"

namespace stokend::addresses {

const User* find_local_user(const UserLookup& users, std::string_view address,
                            std::string_view delimiters);

std::optional<UserAnswer> lookup_local_user(UserLookup& users, const std::string& address,
                                            std::string_view delimiters,
                                            UserLookup::AnswerCallback done);

// The address a message for `address` is queued to once `user` answered
// for it: address itself when it is the user's, else the user's address
// with address's extension (the directory may spell the user differently).
std::string delivery_address(const User& user, const std::string& address,
                             std::string_view delimiters);

}  // namespace stokend::addresses
