// A configuration reload under a session in progress (mta/server/
// server_context.h): the session keeps the generation it was accepted with,
// so its limits and greeting name do not change under it.
#include <catch2/catch.hpp>
#include <string>

#include "tests/support/session_harness.h"

using stokend::Config;
using stokend::Role;
using stokend::TlsMode;
using stokend::testing::SessionHarness;

TEST_CASE("a session keeps the limits it started with across a reload", "[session][reload]") {
  SessionHarness session({Role::mx, TlsMode::none});
  session.config.limits.max_recipients = 2;
  session.users.add("bob@example.test");
  session.users.add("dan@example.test");
  session.start();
  CHECK(session.command("EHLO client.example").find("SIZE") != std::string::npos);

  Config reloaded = session.config;
  reloaded.limits.max_recipients = 1;
  reloaded.limits.max_message_size = 1000;
  reloaded.hostname = "other.example.test";
  session.replace_generation(reloaded);

  const std::string ehlo = session.command("EHLO client.example");
  CHECK(ehlo.starts_with("250-mx.example.test"));
  CHECK(ehlo.find("SIZE 1000\n") == std::string::npos);
  CHECK(session.command("MAIL FROM:<carol@remote.test>") == "250 2.1.0 Ok");
  CHECK(session.command("RCPT TO:<bob@example.test>") == "250 2.1.5 Ok");
  CHECK(session.command("RCPT TO:<dan@example.test>") == "250 2.1.5 Ok");
  CHECK(session.command("RCPT TO:<dan@example.test>") == "452 4.5.3 Too many recipients");
}
