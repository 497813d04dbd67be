// DovecotUserdb: the local users as a provider's Dovecot knows them (SQL,
// LDAP, passwd files behind its userdb), asked over the auth master protocol
// of Dovecot's auth-userdb socket, as `doveadm user` does: USER id address
// service=smtp, answered USER, NOTFOUND or FAIL (dovecot_protocol.h).
//
// The session does not block: RCPT asks lookup(), which answers at once
// from the cache or later through its callback, the session reading
// nothing meanwhile, so pipelined commands are answered in order
// (session_core.h's wait_for_work). One connection, shared, with request
// ids; lookups of one address in flight at once share one request.
//
// What a Dovecot user is here (UserLookup's User): the address asked for,
// lowercase (Dovecot's own name for the user may drop the domain); no
// password hash (logins go to Dovecot's passdb through
// dovecot_auth_client.h); the COI filter from a userdb field
// coi_filter=off|active|seen, off when the field is absent or unknown.
//
// Contract (UserLookup, user_lookup.h):
// - Answers (found or unknown) are believed for cache_ttl (0: never
//   cached); a temporary failure is never cached.
// - Dovecot unreachable, no answer within the timeout, FAIL, or a reply
//   that does not parse (logged; the connection is started over): the
//   answer is temporary_failure. Reconnects with a back-off (dovecot_link.h).
// - find() answers from the cache only (positive, unexpired entries); the
//   pointer stays valid until the next lookup(). refresh_if_changed() has
//   nothing to reload.
#pragma once

#include <chrono>
#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "common/deferred_calls.h"
#include "common/event_handles.h"
#include "mta/auth/dovecot_link.h"
#include "mta/user_lookup.h"

namespace stokend::auth {

class DovecotUserdb final : public UserLookup {
 public:
  DovecotUserdb(event_base* base, DovecotEndpoint endpoint, std::chrono::milliseconds cache_ttl,
                std::chrono::milliseconds timeout);
  ~DovecotUserdb() override;

  void start() { link_.open(); }

  bool refresh_if_changed() override { return false; }
  const User* find(std::string_view address) const override;
  std::optional<UserAnswer> lookup(const std::string& address, AnswerCallback done) override;

 private:
  struct Request {
    DovecotUserdb* owner = nullptr;
    std::uint32_t id = 0;
    std::string address;  // lowercase
    bool sent = false;
    std::vector<AnswerCallback> callbacks;
    EventPtr deadline;
  };
  struct CacheEntry {
    UserAnswer answer;
    std::chrono::steady_clock::time_point expires;
  };

  static void on_deadline(evutil_socket_t, short, void* request);
  void on_open();
  void on_line(std::string_view line);
  void on_close();
  void send(Request& request);
  void answer(std::uint32_t id, const UserAnswer& answer);
  void remember(const std::string& address, const UserAnswer& answer);
  std::uint32_t next_id();

  event_base* base_;
  std::chrono::milliseconds cache_ttl_;
  std::chrono::milliseconds timeout_;
  DovecotLink link_;
  DeferredCalls deferred_;
  bool handshake_done_ = false;
  std::map<std::uint32_t, std::unique_ptr<Request>> requests_;
  std::map<std::string, std::uint32_t> in_flight_;  // address → request id
  std::map<std::string, CacheEntry, std::less<>> cache_;
  std::uint32_t last_id_ = 0;
};

}  // namespace stokend::auth
