// What a session asks of the local users: who is this address. UserDirectory
// (users.h, the users file) and DovecotUserdb (auth/dovecot_userdb.h, a
// provider's Dovecot) implement it; tests use a fake (tests/support/).
//
// Contract: called on the loop thread only. find() is case-insensitive and
// returns nullptr for an unknown address; the pointer stays valid until the
// next refresh_if_changed() or lookup(). refresh_if_changed() reloads the
// users when their source changed (checking at most once a second) and
// returns true when it reloaded.
//
// lookup() is the one a remote directory can answer: it returns the answer
// at once when it is known without waiting (the users file, a cached
// answer); otherwise nullopt, and `done` runs later on the loop thread,
// never inside lookup(). A directory that cannot answer (unreachable, too
// slow, a reply that does not parse) answers temporary_failure, never
// unknown. The default asks find(), so a local directory needs nothing more.
#pragma once

#include <functional>
#include <optional>
#include <string>
#include <string_view>

namespace stokend {

enum class CoiFilter { off, active, seen };  // COI server spec: the user's message filter

struct User {
  std::string address;        // lowercase local@domain
  std::string password_hash;  // crypto_pwhash_str output; empty: no login possible
  CoiFilter coi_filter = CoiFilter::off;
};

struct UserAnswer {
  enum class Status { found, unknown, temporary_failure };
  Status status = Status::unknown;
  User user;  // found
};

class UserLookup {
 public:
  using AnswerCallback = std::function<void(const UserAnswer&)>;

  virtual ~UserLookup() = default;
  virtual bool refresh_if_changed() = 0;
  virtual const User* find(std::string_view address) const = 0;
  virtual std::optional<UserAnswer> lookup(const std::string& address, AnswerCallback done) {
    (void)done;
    refresh_if_changed();
    const User* user = find(address);
    if (!user) return UserAnswer{UserAnswer::Status::unknown, {}};
    return UserAnswer{UserAnswer::Status::found, *user};
  }
};

}  // namespace stokend
