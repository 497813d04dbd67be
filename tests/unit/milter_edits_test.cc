// Applying a milter's changes (mta/milter/milter_edits.h): headers added,
// inserted, changed and deleted where Sendmail and Postfix put them, the
// body replaced, recipients and sender changed, and a malformed change
// refused without touching the message.
#include "mta/milter/milter_edits.h"

#include <catch2/catch.hpp>
#include <string>

using namespace stokend::milter;

namespace {

const std::string original =
    "Received: from a\r\n\tby b\r\n"
    "Subject: one\r\n"
    "X-Tag: first\r\n"
    "x-tag: second\r\n"
    "\r\n"
    "Body line\r\n";

Reply header(Reply::Kind kind, std::uint32_t index, std::string name, std::string value) {
  Reply reply;
  reply.kind = kind;
  reply.index = index;
  reply.name = std::move(name);
  reply.value = std::move(value);
  return reply;
}

Reply address(Reply::Kind kind, std::string value) {
  Reply reply;
  reply.kind = kind;
  reply.value = std::move(value);
  return reply;
}

EditedMessage sample() { return {"sender@example.org", {"bob@example.test"}, original}; }

}  // namespace

TEST_CASE("the header section is shown to milters as names and unfolded values", "[milter]") {
  const HeaderSection section = read_header_section(original);
  REQUIRE(section.fields.size() == 4);
  CHECK(section.fields[0] == std::pair<std::string, std::string>{"Received", "from a\n\tby b"});
  CHECK(section.fields[3].first == "x-tag");
  CHECK(original.substr(section.body_at) == "Body line\r\n");
  CHECK(read_header_section("Subject: x\r\n").body_at == 12);
}

TEST_CASE("headers are added at the end, inserted at an index, changed by occurrence", "[milter]") {
  MessageEdits edits;
  edits.add(header(Reply::Kind::add_header, 0, "X-Spam", "yes\nscore=1"));
  edits.add(header(Reply::Kind::insert_header, 0, "X-Top", "1"));
  edits.add(header(Reply::Kind::change_header, 2, "X-TAG", "changed"));
  edits.add(header(Reply::Kind::change_header, 1, "Subject", ""));
  edits.add(header(Reply::Kind::change_header, 3, "X-Tag", "added"));
  EditedMessage message = sample();
  REQUIRE_FALSE(edits.apply(message, 10000));
  CHECK(message.message ==
        "X-Top: 1\r\n"
        "Received: from a\r\n\tby b\r\n"
        "X-Tag: first\r\n"
        "X-TAG: changed\r\n"
        "X-Spam: yes\r\n\tscore=1\r\n"
        "X-Tag: added\r\n"
        "\r\n"
        "Body line\r\n");
}

TEST_CASE("the body is replaced by the chunks in order", "[milter]") {
  MessageEdits edits;
  edits.add(address(Reply::Kind::replace_body, "New "));
  edits.add(address(Reply::Kind::replace_body, "body\r\n"));
  EditedMessage message = sample();
  REQUIRE_FALSE(edits.apply(message, 10000));
  CHECK(message.message.ends_with("x-tag: second\r\n\r\nNew body\r\n"));

  EditedMessage headers_only{"", {"a@b.c"}, "Subject: x\r\n"};
  REQUIRE_FALSE(edits.apply(headers_only, 10000));
  CHECK(headers_only.message == "Subject: x\r\n\r\nNew body\r\n");
}

TEST_CASE("recipients and the sender change", "[milter]") {
  MessageEdits edits;
  edits.add(address(Reply::Kind::add_recipient, "<carol@example.test>"));
  edits.add(address(Reply::Kind::add_recipient, "<BOB@example.test>"));  // already there
  edits.add(address(Reply::Kind::delete_recipient, "<Bob@Example.Test>"));
  edits.add(address(Reply::Kind::change_sender, "<>"));
  EditedMessage message = sample();
  REQUIRE_FALSE(edits.apply(message, 10000));
  CHECK(message.recipients == std::vector<std::string>{"carol@example.test"});
  CHECK(message.sender.empty());
}

TEST_CASE("a malformed change or an oversized result changes nothing", "[milter]") {
  const EditedMessage before = sample();
  auto refused = [&](Reply reply, std::size_t limit = 10000) {
    MessageEdits edits;
    edits.add(header(Reply::Kind::add_header, 0, "X-Fine", "1"));
    edits.add(std::move(reply));
    EditedMessage message = sample();
    const auto error = edits.apply(message, limit);
    CHECK(message.message == before.message);
    CHECK(message.recipients == before.recipients);
    REQUIRE(error);
    return *error;
  };
  CHECK(refused(header(Reply::Kind::add_header, 0, "Bad Name", "x")) ==
        "header name 'Bad Name' is not valid");
  CHECK(refused(header(Reply::Kind::add_header, 0, "X:Y", "x")) ==
        "header name 'X:Y' is not valid");
  CHECK(refused(header(Reply::Kind::add_header, 0, "X-A", "a\rb")) == "header X-A has a bad value");
  CHECK(refused(address(Reply::Kind::add_recipient, "<not an address>")) ==
        "recipient to add '<not an address>' is not an address");
  CHECK(refused(address(Reply::Kind::change_sender, "a@")) == "new sender 'a@' is not an address");
  CHECK(refused(header(Reply::Kind::add_header, 0, "X-B", "b"), 20)
            .starts_with("the changed message has "));
}

TEST_CASE("a value's bare line breaks become folded lines", "[milter]") {
  MessageEdits edits;
  edits.add(header(Reply::Kind::add_header, 0, "X-Long", "a\r\nb\n c"));
  EditedMessage message = sample();
  REQUIRE_FALSE(edits.apply(message, 10000));
  CHECK(message.message.find("X-Long: a\r\n\tb\r\n c\r\n\r\nBody") != std::string::npos);
}
