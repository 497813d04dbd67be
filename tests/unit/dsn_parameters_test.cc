// Unit tests for the DSN extension's parameters: xtext (message/xtext.h),
// their parsing at MAIL and RCPT (mta/server/dsn_parameters.h) and what is
// passed on to a next hop (mta/delivery/dsn_forwarding.h).
#include "mta/server/dsn_parameters.h"

#include <catch2/catch.hpp>
#include <cctype>
#include <string>
#include <vector>

#include "message/xtext.h"
#include "mta/delivery/dsn_forwarding.h"
#include "mta/server/smtp_command.h"

using namespace stokend;
using server::EsmtpParameter;

namespace {

std::vector<EsmtpParameter> parameters_of(const std::string& rcpt_argument) {
  auto parsed = server::parse_rcpt_argument(rcpt_argument, true);
  REQUIRE(parsed.argument);
  return parsed.argument->parameters;
}

// The parameters as written, split at spaces, keywords upper-cased, as
// parse_mail_argument makes them; unlike it, a repeated keyword is kept, so
// that the DSN parsers' own check is seen.
std::vector<EsmtpParameter> split(const std::string& parameters) {
  std::vector<EsmtpParameter> result;
  std::size_t position = 0;
  while (position < parameters.size()) {
    std::size_t end = parameters.find(' ', position);
    if (end == std::string::npos) end = parameters.size();
    const std::string word = parameters.substr(position, end - position);
    const std::size_t equals = word.find('=');
    EsmtpParameter parameter;
    parameter.keyword = word.substr(0, equals);
    for (char& c : parameter.keyword) c = static_cast<char>(std::toupper(c));
    if (equals != std::string::npos) {
      parameter.value = word.substr(equals + 1);
      parameter.has_value = true;
    }
    result.push_back(parameter);
    position = end + 1;
  }
  return result;
}

server::RcptDsnResult rcpt(const std::string& parameters, bool utf8 = false) {
  return server::parse_rcpt_dsn(split(parameters), utf8);
}

server::MailDsnResult mail(const std::string& parameters) {
  return server::parse_mail_dsn(split(parameters));
}

void check_refused(const server::Reply& error, const std::string& text_part) {
  CHECK(error.code == 501);
  CHECK(error.enhanced == "5.5.4");
  INFO("reply text: " << error.text);
  CHECK(error.text.find(text_part) != std::string::npos);
}

}  // namespace

TEST_CASE("xtext encodes and decodes as RFC 3461 section 4 says", "[dsn]") {
  CHECK(message::encode_xtext("a+b=c d") == "a+2Bb+3Dc+20d");
  CHECK(message::decode_xtext("a+2Bb+3Dc+20d") == "a+b=c d");
  CHECK(message::decode_xtext("") == "");
  CHECK_FALSE(message::decode_xtext("a+2b"));   // hex digits are upper case
  CHECK_FALSE(message::decode_xtext("a+2"));    // cut short
  CHECK_FALSE(message::decode_xtext("a=b"));    // "=" is not an xchar
  CHECK_FALSE(message::decode_xtext("a b"));    // nor is a space
  CHECK_FALSE(message::decode_xtext("a+0Db"));  // decodes to a control character
  CHECK_FALSE(message::decode_xtext("\xc3\xa9"));
  for (const std::string text : {"plain", "with space", "+=+", "~!"}) {
    CHECK(message::decode_xtext(message::encode_xtext(text)) == text);
  }
}

TEST_CASE("utf-8-addr-xtext: escapes of RFC 6533 section 3", "[dsn]") {
  const std::string address =
      "j\xc3\xb6rg+x@b\xc3\xbc"
      "cher.example";
  const std::string encoded = message::encode_utf8_address_xtext(address);
  CHECK(encoded == "j\\x{F6}rg\\x{2B}x@b\\x{FC}cher.example");
  CHECK(message::decode_utf8_address_xtext(encoded, false) == address);
  CHECK(message::decode_utf8_address_xtext(address.substr(0, 5) + "x@b.example", true) ==
        "j\xc3\xb6rgx@b.example");
  CHECK_FALSE(message::decode_utf8_address_xtext("j\xc3\xb6rg@b.example", false));  // raw UTF-8
  CHECK_FALSE(message::decode_utf8_address_xtext("a+b@c", true));          // "+" is no QCHAR
  CHECK_FALSE(message::decode_utf8_address_xtext("a\\x{}b", true));        // no digits
  CHECK_FALSE(message::decode_utf8_address_xtext("a\\x{1234567}", true));  // too many
  CHECK_FALSE(message::decode_utf8_address_xtext("a\\x{D800}", true));     // a surrogate
  CHECK_FALSE(message::decode_utf8_address_xtext("a\\x{0A}", true));       // a control
  CHECK_FALSE(message::decode_utf8_address_xtext("a\\x{41", true));        // unterminated
  CHECK_FALSE(message::decode_utf8_address_xtext("\xc3(", true));          // not UTF-8
  CHECK_FALSE(message::decode_utf8_address_xtext("", true));
}

TEST_CASE("NOTIFY: NEVER alone, or a list of SUCCESS, FAILURE, DELAY", "[dsn]") {
  using namespace queue::notify;
  CHECK(rcpt("NOTIFY=NEVER").dsn->notify == never);
  CHECK(rcpt("NOTIFY=success,Delay").dsn->notify == (success | delay));
  CHECK(rcpt("NOTIFY=FAILURE,SUCCESS,DELAY").dsn->notify == (success | failure | delay));
  CHECK(rcpt("").dsn->notify == 0);
  check_refused(rcpt("NOTIFY=NEVER,SUCCESS").error, "NOTIFY=NEVER or a list");
  check_refused(rcpt("NOTIFY=SUCCESS,SUCCESS").error, "NOTIFY=");
  check_refused(rcpt("NOTIFY=SUCCESS,").error, "NOTIFY=");
  check_refused(rcpt("NOTIFY=SOMETIMES").error, "NOTIFY=");
  check_refused(rcpt("NOTIFY").error, "NOTIFY=");
  check_refused(rcpt("NOTIFY=NEVER NOTIFY=NEVER").error, "NOTIFY given more than once");
}

TEST_CASE("ORCPT: addr-type and xtext, decoded", "[dsn]") {
  auto result = rcpt("ORCPT=rfc822;Bob+2BSales@example.net");
  REQUIRE(result.dsn);
  CHECK(result.dsn->original_type == "rfc822");
  CHECK(result.dsn->original_address == "Bob+Sales@example.net");
  result = rcpt("ORCPT=UTF-8;j\\x{F6}rg@example.net");
  REQUIRE(result.dsn);
  CHECK(result.dsn->original_type == "utf-8");
  CHECK(result.dsn->original_address == "j\xc3\xb6rg@example.net");
  // Raw UTF-8 only in an SMTPUTF8 transaction (utf-8-addr-unitext).
  CHECK(rcpt("ORCPT=utf-8;j\xc3\xb6rg@example.net", true).dsn);
  check_refused(rcpt("ORCPT=utf-8;j\xc3\xb6rg@example.net", false).error, "utf-8-addr-xtext");
  check_refused(rcpt("ORCPT=rfc822;a+zz@b").error, "not xtext");
  check_refused(rcpt("ORCPT=rfc822;").error, "not xtext");
  check_refused(rcpt("ORCPT=bob@example.net").error, "Syntax: ORCPT=addr-type;xtext");
  check_refused(rcpt("ORCPT=;bob@example.net").error, "Syntax: ORCPT=addr-type;xtext");
  check_refused(rcpt("ORCPT=rfc(822);bob@example.net").error, "Syntax: ORCPT=addr-type;xtext");
  check_refused(rcpt("ORCPT=rfc822;" + std::string(495, 'a')).error, "longer than 500");
  CHECK(rcpt("ORCPT=rfc822;" + std::string(493, 'a')).dsn);
  check_refused(rcpt("ORCPT=rfc822;a@b ORCPT=rfc822;a@b").error, "ORCPT given more than once");
}

TEST_CASE("RET and ENVID on MAIL", "[dsn]") {
  auto result = mail("RET=hdrs ENVID=QQ+2B1");
  REQUIRE(result.dsn);
  CHECK(result.dsn->ret == queue::DsnReturn::headers);
  CHECK(result.dsn->envelope_id == "QQ+1");
  CHECK(mail("RET=FULL").dsn->ret == queue::DsnReturn::full);
  CHECK(mail("SIZE=10").dsn->ret == queue::DsnReturn::unspecified);  // other keywords: not ours
  check_refused(mail("RET=BODY").error, "RET=FULL or RET=HDRS");
  check_refused(mail("RET").error, "RET=FULL or RET=HDRS");
  check_refused(mail("RET=FULL RET=HDRS").error, "RET given more than once");
  check_refused(mail("ENVID=a+zz").error, "ENVID is not xtext");
  check_refused(mail("ENVID").error, "envelope id is required");
  check_refused(mail("ENVID=" + std::string(101, 'e')).error, "longer than 100");
  CHECK(mail("ENVID=" + std::string(100, 'e')).dsn->envelope_id == std::string(100, 'e'));
  check_refused(mail("ENVID=a ENVID=b").error, "ENVID given more than once");
}

TEST_CASE("the DSN requests passed on to a next hop", "[dsn]") {
  queue::Envelope envelope;
  envelope.recipients = {"bob@example.net", "carol@example.net", "d\xc3\xa9@example.net"};
  CHECK(dsn_mail_parameters(envelope).empty());
  // No request at all: the ORCPT RFC 3461 section 4.2 lets a relay add.
  CHECK(dsn_recipient_parameters(envelope, 0) == "ORCPT=rfc822;bob@example.net");
  CHECK(dsn_recipient_parameters(envelope, 2) == "ORCPT=utf-8;d\\x{E9}@example.net");

  envelope.dsn_return = queue::DsnReturn::headers;
  envelope.envelope_id = "id=1 x";
  CHECK(dsn_mail_parameters(envelope) == "RET=HDRS ENVID=id+3D1+20x");
  envelope.recipient_dsn.resize(3);
  envelope.recipient_dsn[0].notify = queue::notify::delay | queue::notify::success;
  envelope.recipient_dsn[0].original_type = "rfc822";
  envelope.recipient_dsn[0].original_address = "Bob+Sales@example.net";
  envelope.recipient_dsn[1].notify = queue::notify::never;
  CHECK(dsn_recipient_parameters(envelope, 0) ==
        "NOTIFY=SUCCESS,DELAY ORCPT=rfc822;Bob+2BSales@example.net");
  CHECK(dsn_recipient_parameters(envelope, 1) == "NOTIFY=NEVER ORCPT=rfc822;carol@example.net");

  // What goes out parses back to what came in.
  auto again = server::parse_rcpt_dsn(
      parameters_of("TO:<bob@example.net> " + dsn_recipient_parameters(envelope, 0)), false);
  REQUIRE(again.dsn);
  CHECK(*again.dsn == envelope.recipient_dsn[0]);
}
