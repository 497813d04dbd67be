// What a session asks of the local users: who is this address. UserDirectory
// (users.h) implements it; tests use a fake (tests/support/).
//
// Contract: called on the loop thread only. find() is case-insensitive and
// returns nullptr for an unknown address; the pointer stays valid until the
// next refresh_if_changed(). refresh_if_changed() reloads the users when
// their source changed (checking at most once a second) and returns true
// when it reloaded.
#pragma once

#include <string>
#include <string_view>

namespace stokend {

enum class CoiFilter { off, active, seen };  // COI server spec: the user's message filter

struct User {
  std::string address;        // lowercase local@domain
  std::string password_hash;  // crypto_pwhash_str output; empty: no login possible
  CoiFilter coi_filter = CoiFilter::off;
};

class UserLookup {
 public:
  virtual ~UserLookup() = default;
  virtual bool refresh_if_changed() = 0;
  virtual const User* find(std::string_view address) const = 0;
};

}  // namespace stokend
