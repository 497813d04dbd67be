// Unit tests of the MX role (mta/server/mx_role.h) in the session state
// machine: local recipients only, no relaying (RFC 5321 §3.6), unknown
// users refused or checked at the next hop, no AUTH and no Token Server.
#include <catch2/catch.hpp>
#include <string>

#include "mta/routes.h"
#include "tests/support/session_harness.h"

using stokend::RecipientCheck;
using stokend::Role;
using stokend::Route;
using stokend::RouteTable;
using stokend::TlsMode;
using stokend::testing::FakeRecipientVerifier;
using stokend::testing::SessionHarness;

namespace {

// An MX session in a transaction: EHLO and MAIL done.
struct InTransaction {
  SessionHarness session{{Role::mx, TlsMode::none}};
  InTransaction() {
    session.users.add("bob@example.test");
    session.start();
    session.command("EHLO client.example");
    REQUIRE(session.command("MAIL FROM:<carol@remote.test>") == "250 2.1.0 Ok");
  }
};

}  // namespace

TEST_CASE("MX: recipients of the local domains only", "[session]") {
  InTransaction fixture;
  auto& session = fixture.session;

  CHECK(session.command("RCPT TO:<Bob@Example.TEST>") == "250 2.1.5 Ok");
  CHECK(session.command("RCPT TO:<nobody@example.test>") ==
        "550 5.1.1 <nobody@example.test>: Recipient address rejected: user unknown");
  CHECK(session.command("RCPT TO:<dave@remote.test>") ==
        "550 5.7.1 <dave@remote.test>: Relay access denied");
  // A local address that would relay onwards (the %-hack) is refused too.
  const std::string trick = session.command("RCPT TO:<dave%remote.test@example.test>");
  CHECK(trick.rfind("550 5.7.1 <dave%remote.test@example.test>: Relay access denied (", 0) == 0);
  CHECK(session.users.refreshes > 0);  // the users are looked up fresh
}

TEST_CASE("MX: no AUTH, no LHLO, no GENSTOKEN, no SYNC", "[session]") {
  InTransaction fixture;
  auto& session = fixture.session;
  CHECK(session.command("RSET") == "250 2.0.0 Ok");
  CHECK(session.command("LHLO client.example") == "502 5.5.1 LHLO is not available on this port");
  CHECK(session.command("GENSTOKEN TEMP dave@remote.test") ==
        "502 5.5.1 GENSTOKEN is not available on this port");
  CHECK(session.command("REVSTOKEN dave@remote.test") ==
        "502 5.5.1 REVSTOKEN is not available on this port");
  CHECK(session.command("MAIL FROM:<carol@remote.test> SYNC") ==
        "555 5.5.4 Unsupported parameter SYNC");
  const std::string ehlo = session.command("EHLO client.example");
  CHECK(ehlo.find("AUTH") == std::string::npos);
  CHECK(ehlo.find("STOKEN") == std::string::npos);
}

TEST_CASE("MX: unknown users of a recipient_probe domain are asked of the next hop", "[session]") {
  SessionHarness session({Role::mx, TlsMode::none});
  FakeRecipientVerifier verifier(session.base.get());
  verifier.answers["known@example.test"] = {RecipientCheck::Verdict::exists, "250 2.1.5 Ok"};
  verifier.answers["gone@example.test"] = {RecipientCheck::Verdict::unknown,
                                           "550 5.1.1 No such user"};
  Route next_hop;
  next_hop.transport = Route::Transport::smtp;
  next_hop.next_hop.host = "192.0.2.25";
  const RouteTable routes({{"example.test", next_hop}});
  session.config.recipient_probe.domains = {"example.test"};
  session.recipient_verifier = &verifier;
  session.routes = &routes;
  session.start();
  session.command("EHLO client.example");
  session.command("MAIL FROM:<carol@remote.test>");

  // Pipelined: each answer waits for the next hop, in order.
  session.send(
      "RCPT TO:<known@example.test>\r\nRCPT TO:<gone@example.test>\r\n"
      "RCPT TO:<silent@example.test>\r\n");
  auto replies = session.replies(3);
  REQUIRE(replies.size() == 3);
  CHECK(replies[0] == "250 2.1.5 Ok");
  CHECK(replies[1] ==
        "550 5.1.1 <gone@example.test>: Recipient address rejected: undeliverable address: "
        "550 5.1.1 No such user");
  CHECK(replies[2].rfind(
            "450 4.1.1 <silent@example.test>: Recipient address rejected: unverified address: ",
            0) == 0);
  CHECK(verifier.asked ==
        std::vector<std::string>{"known@example.test", "gone@example.test", "silent@example.test"});
}
