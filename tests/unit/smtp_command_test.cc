// Unit tests for SMTP command line splitting and MAIL/RCPT argument parsing,
// including ESMTP parameters and the replies sent on errors.
#include "mta/server/smtp_command.h"

#include <catch2/catch.hpp>
#include <string>

using stokend::server::ArgumentParseResult;
using stokend::server::find_parameter;
using stokend::server::parse_command;
using stokend::server::parse_mail_argument;
using stokend::server::parse_rcpt_argument;
using stokend::server::Verb;

namespace {

void check_error(const ArgumentParseResult& result, int code, const std::string& enhanced,
                 const std::string& text_part) {
  CHECK_FALSE(result.argument.has_value());
  CHECK(result.error.code == code);
  CHECK(result.error.enhanced == enhanced);
  INFO("reply text: " << result.error.text);
  CHECK(result.error.text.find(text_part) != std::string::npos);
}

}  // namespace

TEST_CASE("Verbs are recognised case-insensitively") {
  const struct {
    const char* line;
    Verb verb;
  } cases[] = {
      {"EHLO client.example", Verb::ehlo},
      {"helo x", Verb::helo},
      {"LhLo x", Verb::lhlo},
      {"MAIL FROM:<>", Verb::mail},
      {"rcpt TO:<a@b>", Verb::rcpt},
      {"DATA", Verb::data},
      {"BDAT 100 LAST", Verb::bdat},
      {"RSET", Verb::rset},
      {"NOOP", Verb::noop},
      {"QUIT", Verb::quit},
      {"VRFY a", Verb::vrfy},
      {"EXPN list", Verb::expn},
      {"HELP", Verb::help},
      {"StartTLS", Verb::starttls},
      {"AUTH PLAIN", Verb::auth},
      {"GENSTOKEN PERM a@b", Verb::genstoken},
      {"revstoken a@b", Verb::revstoken},
      {"FROB", Verb::unknown},
      {"", Verb::unknown},
      {"MAILFROM:<a@b>", Verb::unknown},
  };
  for (const auto& entry : cases) {
    INFO(entry.line);
    CHECK(parse_command(entry.line).verb == entry.verb);
  }
}

TEST_CASE("The argument is everything after the first space, as written") {
  const auto command = parse_command("Mail FROM:<a@b.example>  SIZE=1 ");
  CHECK(command.verb == Verb::mail);
  CHECK(command.verb_text == "Mail");
  CHECK(command.argument == "FROM:<a@b.example>  SIZE=1 ");

  const auto bare = parse_command("DATA");
  CHECK(bare.argument.empty());
  CHECK(parse_command("NOOP ").argument.empty());
  CHECK(parse_command("Frob now").verb_text == "Frob");
}

TEST_CASE("MAIL FROM parses the path and parameters") {
  const auto result = parse_mail_argument("FROM:<alice@example.org> SIZE=1000 BODY=8BITMIME");
  REQUIRE(result.argument);
  CHECK(result.argument->path.mailbox.to_string() == "alice@example.org");
  REQUIRE(result.argument->parameters.size() == 2);
  const auto* size = find_parameter(result.argument->parameters, "SIZE");
  REQUIRE(size != nullptr);
  CHECK(size->value == "1000");
  CHECK(size->has_value);
  const auto* body = find_parameter(result.argument->parameters, "BODY");
  REQUIRE(body != nullptr);
  CHECK(body->value == "8BITMIME");
  CHECK(find_parameter(result.argument->parameters, "SMTPUTF8") == nullptr);
}

TEST_CASE("The FROM: and TO: prefixes and keywords are case-insensitive") {
  const auto mail = parse_mail_argument("from:<a@example.org> size=5 body=8bitmime");
  REQUIRE(mail.argument);
  CHECK(mail.argument->parameters[0].keyword == "SIZE");
  CHECK(mail.argument->parameters[1].keyword == "BODY");
  CHECK(mail.argument->parameters[1].value == "8bitmime");  // values keep their case
  CHECK(find_parameter(mail.argument->parameters, "size") != nullptr);
  CHECK(parse_rcpt_argument("tO:<b@example.org>", false).argument);
}

TEST_CASE("The null reverse path is allowed for MAIL only") {
  const auto mail = parse_mail_argument("FROM:<>");
  REQUIRE(mail.argument);
  CHECK(mail.argument->path.is_null);
  check_error(parse_rcpt_argument("TO:<>", false), 501, "5.1.3", "not allowed");
}

TEST_CASE("One space before the path is tolerated, not more") {
  CHECK(parse_mail_argument("FROM: <a@example.org>").argument);
  CHECK(parse_rcpt_argument("TO: <a@example.org>", false).argument);
  check_error(parse_mail_argument("FROM:  <a@example.org>"), 501, "5.1.7",
              "enclosed in '<' and '>'");
}

TEST_CASE("Missing FROM: or TO: gets a syntax reply saying what is expected") {
  for (const char* argument :
       {"", "FROM<a@b.example>", "FROM <a@b.example>", "TO:<a@b.example>", "<a@b.example>"}) {
    INFO(argument);
    check_error(parse_mail_argument(argument), 501, "5.5.4", "Syntax: MAIL FROM:<address>");
  }
  for (const char* argument : {"", "TO<a@b.example>", "FROM:<a@b.example>"}) {
    INFO(argument);
    check_error(parse_rcpt_argument(argument, false), 501, "5.5.4", "Syntax: RCPT TO:<address>");
  }
}

TEST_CASE("Bad addresses get 5.1.7 for senders and 5.1.3 for recipients") {
  check_error(parse_mail_argument("FROM:<a@@example.org>"), 501, "5.1.7",
              "Bad sender address syntax: ");
  check_error(parse_mail_argument("FROM:a@example.org"), 501, "5.1.7", "enclosed");
  check_error(parse_rcpt_argument("TO:<user@remote.example@local.example>", false), 501, "5.1.3",
              "Bad recipient address syntax: unquoted '@' in local part");
  check_error(parse_rcpt_argument("TO:<a@example.org", false), 501, "5.1.3", "missing '>'");
}

TEST_CASE("Text after the address must be parameters") {
  check_error(parse_mail_argument("FROM:<a@example.org>x"), 501, "5.5.4",
              "Unexpected text after the address");
  check_error(parse_rcpt_argument("TO:<a@example.org>SIZE=1", false), 501, "5.5.4",
              "Unexpected text after the address");
  // Trailing spaces carry nothing and are tolerated.
  CHECK(parse_mail_argument("FROM:<a@example.org> ").argument);
}

TEST_CASE("Parameter syntax is checked") {
  check_error(parse_mail_argument("FROM:<a@example.org> SIZE=1  BODY=7BIT"), 501, "5.5.4",
              "single spaces");
  check_error(parse_mail_argument("FROM:<a@example.org> -X=1"), 501, "5.5.4",
              "invalid parameter keyword");
  check_error(parse_mail_argument("FROM:<a@example.org> X_Y=1"), 501, "5.5.4",
              "invalid parameter keyword");
  check_error(parse_mail_argument("FROM:<a@example.org> =1"), 501, "5.5.4",
              "invalid parameter keyword");
  check_error(parse_mail_argument("FROM:<a@example.org> X-Y="), 501, "5.5.4",
              "invalid value for parameter X-Y");
  check_error(parse_mail_argument("FROM:<a@example.org> X-Y=a=b"), 501, "5.5.4",
              "invalid value for parameter X-Y");
  check_error(parse_mail_argument("FROM:<a@example.org> X-Y=a\tb"), 501, "5.5.4",
              "invalid value for parameter X-Y");
  check_error(parse_mail_argument("FROM:<a@example.org> SIZE=1 size=2"), 501, "5.5.4",
              "duplicate parameter SIZE");
}

TEST_CASE("Known parameters have their value syntax checked") {
  check_error(parse_mail_argument("FROM:<a@example.org> SIZE=12k"), 501, "5.5.4", "SIZE");
  check_error(parse_mail_argument("FROM:<a@example.org> SIZE"), 501, "5.5.4", "SIZE");
  check_error(parse_mail_argument("FROM:<a@example.org> SIZE=123456789012345678901"), 501, "5.5.4",
              "SIZE");
  CHECK(parse_mail_argument("FROM:<a@example.org> SIZE=12345678901234567890").argument);
  check_error(parse_mail_argument("FROM:<a@example.org> BODY=9BIT"), 501, "5.5.4", "BODY");
  CHECK(parse_mail_argument("FROM:<a@example.org> BODY=BINARYMIME").argument);
  CHECK(parse_mail_argument("FROM:<a@example.org> BODY=7bit").argument);
  check_error(parse_mail_argument("FROM:<a@example.org> SMTPUTF8=yes"), 501, "5.5.4",
              "SMTPUTF8 takes no value");
}

TEST_CASE("Unknown parameters are returned for the session to judge") {
  const auto result = parse_rcpt_argument(
      "TO:<bob@example.org> STOKEN=1-created:1700000000-validity:604800-hash:AbC+/x-secret:Zz9 "
      "NOTIFY=SUCCESS,FAILURE X-FLAG",
      false);
  REQUIRE(result.argument);
  const auto& parameters = result.argument->parameters;
  REQUIRE(parameters.size() == 3);
  CHECK(parameters[0].keyword == "STOKEN");
  CHECK(parameters[0].value == "1-created:1700000000-validity:604800-hash:AbC+/x-secret:Zz9");
  CHECK(parameters[1].value == "SUCCESS,FAILURE");
  CHECK(parameters[2].keyword == "X-FLAG");
  CHECK_FALSE(parameters[2].has_value);
  CHECK(parameters[2].value.empty());
}

TEST_CASE("MAIL accepts a UTF-8 sender only with SMTPUTF8 in the same command") {
  const std::string sender = "FROM:<j\xC3\xB6rg@example.org>";
  const auto with = parse_mail_argument(sender + " SMTPUTF8");
  REQUIRE(with.argument);
  CHECK(with.argument->path.mailbox.local_part == "j\xC3\xB6rg");
  CHECK(parse_mail_argument(sender + " BODY=8BITMIME SMTPUTF8").argument);
  check_error(parse_mail_argument(sender), 501, "5.1.7", "requires SMTPUTF8");
  check_error(parse_mail_argument(sender + " BODY=8BITMIME"), 501, "5.1.7", "requires SMTPUTF8");
  // The null path with SMTPUTF8 is fine.
  CHECK(parse_mail_argument("FROM:<> SMTPUTF8").argument);
}

TEST_CASE("RCPT accepts a UTF-8 recipient only when the transaction uses SMTPUTF8") {
  const std::string recipient =
      "TO:<b\xC3\xBC@b\xC3\xBC"
      "cher.example>";
  CHECK(parse_rcpt_argument(recipient, true).argument);
  check_error(parse_rcpt_argument(recipient, false), 501, "5.1.3", "requires SMTPUTF8");
}

TEST_CASE("RCPT TO:<Postmaster> without a domain is accepted (RFC 5321 §4.1.1.3)") {
  const auto result = parse_rcpt_argument("TO:<postmaster>", false);
  REQUIRE(result.argument);
  CHECK(result.argument->path.mailbox.local_part == "postmaster");
  CHECK(result.argument->path.mailbox.domain.empty());
  CHECK(parse_rcpt_argument("TO:<POSTMASTER> NOTIFY=NEVER", false).argument);
  check_error(parse_rcpt_argument("TO:<postmaster>x", false), 501, "5.5.4", "Unexpected text");
  check_error(parse_mail_argument("FROM:<postmaster>"), 501, "5.1.7", "no @domain");
  check_error(parse_rcpt_argument("TO:<admin>", false), 501, "5.1.3", "no @domain");
}

TEST_CASE("Relay tricks parse, so that policy can name them") {
  CHECK(parse_rcpt_argument("TO:<user%remote.example@local.example>", false).argument);
  CHECK(parse_rcpt_argument("TO:<@a.example,@b.example:c@d.example>", false).argument);
  const auto quoted = parse_rcpt_argument("TO:<\"user@remote.example\"@local.example>", false);
  REQUIRE(quoted.argument);
  CHECK(stokend::message::relay_trick(quoted.argument->path) == "@ in local part");
}
