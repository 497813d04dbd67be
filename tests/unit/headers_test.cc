// Unit tests for header parsing and chat detection (message/headers.h).
#include "message/headers.h"

#include <catch2/catch.hpp>
#include <string>

using namespace stokend;
using namespace stokend::message;

TEST_CASE("headers: fields are read in order with trimmed values", "[headers]") {
  const auto fields = parse_headers(
      "From: Alice <alice@example.org>\r\n"
      "To:bob@example.net\r\n"
      "Subject:   hello there  \r\n"
      "\r\n"
      "body\r\n");
  REQUIRE(fields.size() == 3);
  CHECK(fields[0].name == "From");
  CHECK(fields[0].value == "Alice <alice@example.org>");
  CHECK(fields[1].name == "To");
  CHECK(fields[1].value == "bob@example.net");
  CHECK(fields[2].value == "hello there");
}

TEST_CASE("headers: folded fields are unfolded (RFC 5322 2.2.3)", "[headers]") {
  const auto fields = parse_headers(
      "Subject: a long\r\n"
      " subject\r\n"
      "\tcontinued\r\n"
      "X-Other: y\r\n"
      "\r\n");
  REQUIRE(fields.size() == 2);
  CHECK(fields[0].value == "a long subject\tcontinued");
  CHECK(fields[1].value == "y");
}

TEST_CASE("headers: bare LF line endings are tolerated", "[headers]") {
  const auto fields = parse_headers("A: 1\n b\nC: 2\n\nD: body\n");
  REQUIRE(fields.size() == 2);
  CHECK(fields[0].value == "1 b");
  CHECK(fields[1].name == "C");
}

TEST_CASE("headers: parsing stops at the first empty line", "[headers]") {
  const auto fields = parse_headers("A: 1\r\n\r\nB: 2\r\nC: 3\r\n");
  REQUIRE(fields.size() == 1);
  CHECK_FALSE(find_header(fields, "B"));
}

TEST_CASE("headers: input without a body or without a final line break", "[headers]") {
  CHECK(parse_headers("").empty());
  CHECK(parse_headers("\r\nA: body").empty());
  const auto fields = parse_headers("A: 1\r\nB: 2");
  REQUIRE(fields.size() == 2);
  CHECK(fields[1].value == "2");
}

TEST_CASE("headers: malformed lines are skipped with their continuations", "[headers]") {
  const auto fields = parse_headers(
      " leading continuation\r\n"
      "no colon here\r\n"
      " continuation of the bad line\r\n"
      "Bad Name: spaces are not allowed\r\n"
      ": empty name\r\n"
      "Good: yes\r\n"
      "Obsolete-Form  : whitespace before colon\r\n"
      "\r\n");
  REQUIRE(fields.size() == 2);
  CHECK(fields[0].name == "Good");
  CHECK(fields[0].value == "yes");
  CHECK(fields[1].name == "Obsolete-Form");
  CHECK(fields[1].value == "whitespace before colon");
}

TEST_CASE("headers: empty values and colons inside values", "[headers]") {
  const auto fields = parse_headers("X-Empty:\r\nDate: Mon, 1 Jan 2024 10:11:12 +0000\r\n\r\n");
  REQUIRE(fields.size() == 2);
  CHECK(fields[0].value.empty());
  CHECK(fields[1].value == "Mon, 1 Jan 2024 10:11:12 +0000");
}

TEST_CASE("headers: find_header is case-insensitive and returns the first", "[headers]") {
  const auto fields = parse_headers("message-id: <one@x>\r\nMESSAGE-ID: <two@x>\r\n\r\n");
  CHECK(find_header(fields, "Message-ID") == std::optional<std::string>("<one@x>"));
  CHECK(find_header(fields, "mEsSaGe-Id") == std::optional<std::string>("<one@x>"));
  CHECK_FALSE(find_header(fields, "Message"));
  CHECK(fields[0].name == "message-id");  // the name is kept as written
}

TEST_CASE("chat detection: Chat-Version header", "[headers][chat]") {
  CHECK(is_chat_message("Chat-Version: 1.0\r\nSubject: x\r\n\r\nhi\r\n"));
  CHECK(is_chat_message("chat-version: 1.0\r\n\r\n"));
  CHECK(is_chat_message("Subject: x\r\nCHAT-VERSION:\r\n\r\n"));
  CHECK_FALSE(is_chat_message("X-Chat-Version: 1.0\r\nChat-Versions: 1\r\n\r\n"));
}

TEST_CASE("chat detection: Message-ID starting with chat$", "[headers][chat]") {
  CHECK(is_chat_message("Message-ID: <chat$abc123@example.org>\r\n\r\n"));
  CHECK(is_chat_message("Message-Id:   <CHAT$abc@example.org>  \r\n\r\n"));
  CHECK(is_chat_message("Message-ID: (comment) <chat$abc@example.org>\r\n\r\n"));
  CHECK(is_chat_message("Message-ID:\r\n <chat$folded@example.org>\r\n\r\n"));
  CHECK(is_chat_message("Message-ID: chat$no-brackets@example.org\r\n\r\n"));

  CHECK_FALSE(is_chat_message("Message-ID: <abc.chat$@example.org>\r\n\r\n"));
  CHECK_FALSE(is_chat_message("Message-ID: <chat@example.org>\r\n\r\n"));
  CHECK_FALSE(is_chat_message("Message-ID: <chatabc@example.org>\r\n\r\n"));
  CHECK_FALSE(is_chat_message("Message-ID: <Mr.abc@example.org>\r\n\r\n"));
  CHECK_FALSE(is_chat_message("X-Message-ID: <chat$abc@example.org>\r\n\r\n"));
  CHECK_FALSE(is_chat_message("In-Reply-To: <chat$abc@example.org>\r\n\r\n"));
}

TEST_CASE("chat detection: first References id starting with chat$", "[headers][chat]") {
  CHECK(is_chat_message("References: <chat$first@a> <other@b>\r\n\r\n"));
  CHECK(is_chat_message("References: <Chat$first@a>\r\n <other@b>\r\n\r\n"));
  CHECK(is_chat_message("Message-ID: <plain@x>\r\nReferences: <chat$first@a>\r\n\r\n"));

  CHECK_FALSE(is_chat_message("References: <first@a> <chat$second@b>\r\n\r\n"));
  CHECK_FALSE(is_chat_message("References: <first@a>\r\n <chat$second@b>\r\n\r\n"));
  CHECK_FALSE(is_chat_message("References:\r\n\r\n"));
}

TEST_CASE("chat detection: plain mail is not chat", "[headers][chat]") {
  CHECK_FALSE(is_chat_message(""));
  CHECK_FALSE(is_chat_message(
      "From: a@example.org\r\nTo: b@example.net\r\nSubject: chat$ in the subject\r\n"
      "Message-ID: <1234@example.org>\r\n\r\nHello\r\n"));
}

TEST_CASE("chat detection: the body is never read", "[headers][chat]") {
  CHECK_FALSE(is_chat_message("Subject: x\r\n\r\nChat-Version: 1.0\r\n"));
  CHECK_FALSE(is_chat_message("Subject: x\r\n\r\nMessage-ID: <chat$x@y>\r\n"));
  CHECK_FALSE(is_chat_message("Subject: x\r\n\r\nReferences: <chat$x@y>\r\n"));
  CHECK_FALSE(is_chat_message("\r\nChat-Version: 1.0\r\n"));
}

TEST_CASE("chat detection: a Chat-Version beyond the scan limit is ignored", "[headers][chat]") {
  std::string message;
  while (message.size() < 300 * 1024) message += "X-Filler: " + std::string(200, 'f') + "\r\n";
  CHECK_FALSE(is_chat_message(message + "Chat-Version: 1.0\r\n\r\n"));
  CHECK(is_chat_message("Chat-Version: 1.0\r\n" + message + "\r\n"));
}

TEST_CASE("chat detection on parsed fields", "[headers][chat]") {
  CHECK(is_chat_message(std::vector<HeaderField>{{"Chat-Version", "1.0"}}));
  CHECK(is_chat_message(std::vector<HeaderField>{{"Message-ID", "<chat$1@x>"}}));
  CHECK_FALSE(is_chat_message(std::vector<HeaderField>{}));
}

TEST_CASE("headers: remove_header_fields drops every such field with its folds", "[headers]") {
  const std::string message =
      "Received: from a\r\n\tby b\r\n"
      "Submission-Token: 1-created:1-validity:2\r\n\t-hash:x-secret:y\r\n"
      "From: <bob@remote.example>\r\n"
      "submission-token : second\r\n"
      "Subject: Submission-Token: stays\r\n"
      "\r\n"
      "Submission-Token: in the body stays\r\n";
  CHECK(stokend::message::remove_header_fields(message, "Submission-Token") ==
        "Received: from a\r\n\tby b\r\n"
        "From: <bob@remote.example>\r\n"
        "Subject: Submission-Token: stays\r\n"
        "\r\n"
        "Submission-Token: in the body stays\r\n");
}

TEST_CASE("headers: remove_header_fields leaves a message without the field alone", "[headers]") {
  const std::string message = "From: a\r\nSubject: b\r\n\r\nbody\r\n";
  CHECK(stokend::message::remove_header_fields(message, "Submission-Token") == message);
  CHECK(stokend::message::remove_header_fields("", "X") == "");
  // A message that is all header, no empty line: the field still goes.
  CHECK(stokend::message::remove_header_fields("X: 1\r\nY: 2\r\n", "x") == "Y: 2\r\n");
}

TEST_CASE("header_section stops at the empty line and at the scan bound", "[headers]") {
  using stokend::message::header_section;
  using stokend::message::max_header_section_scanned;
  CHECK(header_section("A: 1\r\nB: 2\r\n\r\nbody\r\n\r\nmore") == "A: 1\r\nB: 2");
  CHECK(header_section("A: 1\r\n") == "A: 1\r\n");
  const std::string endless(max_header_section_scanned + 10, 'x');
  CHECK(header_section(endless).size() == max_header_section_scanned);
}

TEST_CASE("find_all_headers returns every field of a name, in order", "[headers]") {
  using stokend::message::find_all_headers;
  using stokend::message::parse_headers;
  auto fields = parse_headers("Received: one\r\nsubject: s\r\nRECEIVED: two\r\n\r\n");
  CHECK(find_all_headers(fields, "received") == std::vector<std::string>{"one", "two"});
  CHECK(find_all_headers(fields, "X-None").empty());
}

TEST_CASE("headers: count_header_fields counts header fields only, folded ones once", "[headers]") {
  const std::string message =
      "Received: from a by b;\r\n\tMon, 7 Dec 2026 12:00:00 +0000\r\n"
      "received: from c by d; Mon, 7 Dec 2026 12:00:00 +0000\r\n"
      "X-Received: not the same field\r\n"
      "Subject: hi\r\n"
      "\r\n"
      "Received: in the body\r\n";
  CHECK(stokend::message::count_header_fields(message, "Received") == 2);
  CHECK(stokend::message::count_header_fields(message, "Subject") == 1);
  CHECK(stokend::message::count_header_fields(message, "Delivered-To") == 0);
  CHECK(stokend::message::count_header_fields("", "Received") == 0);
}
