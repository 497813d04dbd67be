// The control protocol's text: request lines, queue ids, and the framing of
// answers (status line, dot-stuffed body, end line).
#include "mta/control/control_protocol.h"

#include <catch2/catch.hpp>
#include <string>

using stokend::control::Answer;
using stokend::control::Command;
using stokend::control::decode_answer;
using stokend::control::encode_answer;
using stokend::control::format_request;
using stokend::control::is_message_id;
using stokend::control::parse_request;
using stokend::control::Request;

namespace {

std::optional<Request> parsed(std::string_view line) {
  std::string error;
  auto request = parse_request(line, error);
  if (!request) CHECK_FALSE(error.empty());
  return request;
}

std::string parse_error(std::string_view line) {
  std::string error;
  REQUIRE_FALSE(parse_request(line, error));
  return error;
}

}  // namespace

TEST_CASE("control requests parse with and without a queue id", "[control]") {
  const std::string id = "0189c5f3a2b4c0000001";
  CHECK(parsed("LIST") == Request{Command::list, {}});
  CHECK(parsed("SHOW " + id) == Request{Command::show, id});
  CHECK(parsed("FLUSH") == Request{Command::flush, {}});
  CHECK(parsed("FLUSH " + id) == Request{Command::flush, id});
  CHECK(parsed("HOLD " + id) == Request{Command::hold, id});
  CHECK(parsed("RELEASE " + id) == Request{Command::release, id});
  CHECK(parsed("DELETE " + id) == Request{Command::remove, id});
  CHECK(parsed("RELOAD") == Request{Command::reload, {}});
  // Command words ignore case; a CR before the LF is dropped.
  CHECK(parsed("list\r") == Request{Command::list, {}});
  CHECK(parsed("Hold " + id + "\r") == Request{Command::hold, id});
}

TEST_CASE("malformed control requests are refused with a reason", "[control]") {
  CHECK(parse_error("") == "empty request");
  CHECK(parse_error("MAILQ") == "unknown command");
  CHECK(parse_error("SHOW") == "SHOW needs a queue id");
  CHECK(parse_error("HOLD") == "HOLD needs a queue id");
  CHECK(parse_error("LIST abc") == "LIST takes no argument");
  CHECK(parse_error("RELOAD now") == "RELOAD takes no argument");
  CHECK(parse_error("SHOW ABC") == "malformed queue id");
  CHECK(parse_error("SHOW ../etc") == "malformed queue id");
  CHECK(parse_error("SHOW  abc") == "malformed queue id");
  CHECK(parse_error("DELETE abc def") == "malformed queue id");
  CHECK(parse_error("FLUSH ") == "malformed queue id");
}

TEST_CASE("changes select one message, ALL, or the messages of a domain", "[control]") {
  const std::string id = "0189c5f3a2b4c0000001";
  CHECK(parsed("REQUEUE " + id) == Request{Command::requeue, id});
  CHECK(parsed("DELETE ALL") == Request::every_message(Command::remove));
  CHECK(parsed("requeue ALL") == Request::every_message(Command::requeue));
  // The domain is compared without case, so it travels lowercased.
  CHECK(parsed("HOLD @Example.ORG") == Request::for_domain(Command::hold, "example.org"));
  CHECK(parsed("RELEASE @xn--bcher-kva.test") ==
        Request::for_domain(Command::release, "xn--bcher-kva.test"));
  CHECK(parse_error("REQUEUE") == "REQUEUE needs a queue id");
  CHECK(parse_error("DELETE all") == "malformed queue id");  // ALL is a word, not a name
  CHECK(parse_error("SHOW ALL") == "malformed queue id");    // SHOW and FLUSH take ids only
  CHECK(parse_error("FLUSH @example.org") == "malformed queue id");
  for (const char* domain :
       {"@", "@.example", "@example..org", "@exa mple.org", "@a/b", "@example.org."}) {
    CAPTURE(domain);
    CHECK(parse_error(std::string("DELETE ") + domain) == "malformed domain");
  }
  CHECK(parse_error("DELETE @" + std::string(64, 'a') + ".test") == "malformed domain");
  CHECK(parsed("DELETE @" + std::string(63, 'a') + ".test"));
}

TEST_CASE("queue ids are lowercase hex of bounded length", "[control]") {
  CHECK(is_message_id("0189c5f3a2b4c0000001"));
  CHECK(is_message_id("a"));
  CHECK_FALSE(is_message_id(""));
  CHECK_FALSE(is_message_id("0189C5"));
  CHECK_FALSE(is_message_id("xyz"));
  CHECK_FALSE(is_message_id("01 89"));
  CHECK(is_message_id(std::string(64, 'f')));
  CHECK_FALSE(is_message_id(std::string(65, 'f')));
}

TEST_CASE("formatted requests parse back to themselves", "[control]") {
  for (const Request& request :
       {Request{Command::list, {}}, Request{Command::flush, {}}, Request{Command::flush, "ab"},
        Request{Command::show, "ab"}, Request{Command::hold, "ab"}, Request{Command::release, "ab"},
        Request{Command::remove, "ab"}, Request{Command::requeue, "ab"},
        Request::every_message(Command::remove), Request::for_domain(Command::hold, "example.org"),
        Request{Command::reload, {}}}) {
    std::string line = format_request(request);
    REQUIRE(line.ends_with('\n'));
    line.pop_back();
    CHECK(parsed(line) == request);
  }
  CHECK(format_request({Command::remove, "ab"}) == "DELETE ab\n");
  CHECK(format_request(Request::every_message(Command::requeue)) == "REQUEUE ALL\n");
  CHECK(format_request(Request::for_domain(Command::remove, "example.org")) ==
        "DELETE @example.org\n");
}

TEST_CASE("answers are framed with a status line, stuffed body and end line", "[control]") {
  CHECK(encode_answer(Answer{true, {}, "one\n.two\n..three\n"}) == "OK\none\n..two\n...three\n.\n");
  CHECK(encode_answer(Answer{true, {}, "no line end"}) == "OK\nno line end\n.\n");
  CHECK(encode_answer(Answer{true, {}, {}}) == "OK\n.\n");
  CHECK(encode_answer(Answer{false, "no such message", {}}) == "ERR no such message\n.\n");
  // A reason stays on its line.
  CHECK(encode_answer(Answer{false, "a\r\nb", {}}) == "ERR a  b\n.\n");
}

TEST_CASE("decoded answers undo the framing", "[control]") {
  std::string error;
  const Answer original{true, {}, ".\n..\nplain\n.leading dot\n\n"};
  const auto decoded = decode_answer(encode_answer(original), error);
  REQUIRE(decoded);
  CHECK(decoded->ok);
  CHECK(decoded->body == original.body);

  const auto refused = decode_answer("ERR busy: try again\n.\n", error);
  REQUIRE(refused);
  CHECK_FALSE(refused->ok);
  CHECK(refused->reason == "busy: try again");
  CHECK(refused->body.empty());
}

TEST_CASE("cut-off or foreign answers are errors", "[control]") {
  std::string error;
  CHECK_FALSE(decode_answer("", error));
  CHECK(error == "the daemon closed the connection without an answer");
  CHECK_FALSE(decode_answer("OK\nline\n", error));
  CHECK(error == "the daemon's answer was cut off");
  CHECK_FALSE(decode_answer("OK", error));
  CHECK_FALSE(decode_answer("220 mx.example.org ESMTP\r\n", error));
  CHECK(error.starts_with("the daemon sent an unexpected answer"));
}
