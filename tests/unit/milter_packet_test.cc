// The milter packet codec (mta/milter/milter_packet.h): commands framed as
// Sendmail's libmilter reads them, replies framed and parsed, and every
// malformed reply refused with its reason.
#include "mta/milter/milter_packet.h"

#include <catch2/catch.hpp>
#include <string>

using namespace stokend::milter;

namespace {

std::string frame(char code, const std::string& data) { return encode(code, data); }

Reply parsed(char code, const std::string& data) {
  const ReplyParse parse = parse_reply({code, data});
  INFO(parse.error);
  REQUIRE(parse.reply);
  return *parse.reply;
}

std::string refused(char code, const std::string& data) {
  const ReplyParse parse = parse_reply({code, data});
  REQUIRE_FALSE(parse.reply);
  return parse.error;
}

}  // namespace

TEST_CASE("commands are framed with a big-endian length that counts the letter", "[milter]") {
  CHECK(encode('Q') == std::string("\0\0\0\1Q", 5));
  CHECK(encode_strings('H', {"client.example.org"}) ==
        std::string("\0\0\0\x14Hclient.example.org\0", 24));
  CHECK(encode_option_negotiation(0x1ff, 0x0ff7ff) ==
        std::string("\0\0\0\x0dO\0\0\0\x06\0\0\x01\xff\0\x0f\xf7\xff", 17));
  CHECK(encode_macros('C', {{"j", "mx"}, {"{client_addr}", "1.2.3.4"}}) ==
        std::string("\0\0\0\x1d"
                    "DCj\0mx\0{client_addr}\0"
                    "1.2.3.4\0",
                    33));
}

TEST_CASE("CONNECT carries the family, the port in network order and the address", "[milter]") {
  CHECK(encode_connect("unknown", "192.0.2.1", 25) == std::string("\0\0\0\x16"
                                                                  "Cunknown\0"
                                                                  "4\0\x19"
                                                                  "192.0.2.1\0",
                                                                  26));
  CHECK(encode_connect("h", "2001:db8::1", 587).substr(5, 4) == std::string("h\0"
                                                                            "6\x02",
                                                                            4));
  CHECK(encode_connect("h", "", 0) == std::string("\0\0\0\4Ch\0U", 8));
}

TEST_CASE("the packet reader waits for whole packets and refuses lengths out of range",
          "[milter]") {
  PacketReader reader(16);
  const std::string two = frame('c', "") + frame('h', std::string("X\0y\0", 4));
  reader.append(two.substr(0, 3));
  CHECK_FALSE(reader.next());
  reader.append(two.substr(3, 4));
  auto first = reader.next();
  REQUIRE(first);
  CHECK(first->code == 'c');
  CHECK(first->data.empty());
  CHECK_FALSE(reader.next());
  reader.append(two.substr(7));
  auto second = reader.next();
  REQUIRE(second);
  CHECK(second->code == 'h');
  CHECK(second->data == std::string("X\0y\0", 4));
  CHECK_FALSE(reader.failed());

  PacketReader empty(16);
  empty.append(std::string("\0\0\0\0", 4));
  CHECK_FALSE(empty.next());
  CHECK(empty.failed());
  PacketReader large(16);
  large.append(std::string("\0\0\0\x11", 4));
  CHECK_FALSE(large.next());
  CHECK(large.failed());
}

TEST_CASE("the negotiation reply gives version, actions and steps", "[milter]") {
  const Reply reply = parsed('O', std::string("\0\0\0\6\0\0\0\x21\0\0\0\x10", 12));
  CHECK(reply.kind == Reply::Kind::option_negotiation);
  CHECK(reply.version == 6);
  CHECK(reply.actions == 0x21);
  CHECK(reply.steps == 0x10);
  CHECK(refused('O', std::string("\0\0\0\6", 4)) == "option negotiation reply too short");
}

TEST_CASE("verdict letters carry no data", "[milter]") {
  CHECK(parsed('a', "").kind == Reply::Kind::accept);
  CHECK(parsed('c', "").kind == Reply::Kind::continue_);
  CHECK(parsed('d', "").kind == Reply::Kind::discard);
  CHECK(parsed('r', "").kind == Reply::Kind::reject);
  CHECK(parsed('t', "").kind == Reply::Kind::tempfail);
  CHECK(parsed('p', "").kind == Reply::Kind::progress);
  CHECK(parsed('s', "").kind == Reply::Kind::skip);
  CHECK(refused('c', "x") == "unexpected data after the reply letter");
  CHECK(refused('Z', "") == "unknown reply 'Z'");
  CHECK(refused('\x01', "") == "unknown reply 0x01");
}

TEST_CASE("a custom reply keeps its lines, code and enhanced code", "[milter]") {
  const Reply one = parsed('y', std::string("554 5.7.1 Spam\0", 15));
  CHECK(one.kind == Reply::Kind::reply_code);
  CHECK(one.code == 554);
  CHECK(one.enhanced == "5.7.1");
  CHECK(one.text == std::vector<std::string>{"5.7.1 Spam"});

  const Reply many = parsed('y', std::string("451-4.7.1 Greylisted\r\n451 4.7.1 later\0", 38));
  CHECK(many.code == 451);
  CHECK(many.text == std::vector<std::string>{"4.7.1 Greylisted", "4.7.1 later"});

  const Reply bare = parsed('y', std::string("550\0", 4));
  CHECK(bare.code == 550);
  CHECK(bare.enhanced.empty());

  CHECK(refused('y', std::string("250 2.0.0 Ok\0", 13)) == "reply code 250 is not 4xx or 5xx");
  CHECK(refused('y', "554 no NUL") == "reply code not NUL-terminated");
  CHECK(refused('y', std::string("554-a\r\n550 b\0", 13)) ==
        "reply code lines with different codes");
  CHECK(refused('y', std::string("554 a\rRCPT\0", 11)) ==
        "reply code text with a control character");
  CHECK(refused('y', std::string("554 a\r\n554 b\0", 13)) ==
        "reply code line with a bad separator");
  CHECK(refused('y', std::string("5x4 a\0", 6)) == "reply code line without a 3-digit code");
  // An enhanced code of the other class is text, not a status.
  CHECK(parsed('y', std::string("554 4.7.1 odd\0", 14)).enhanced.empty());
}

TEST_CASE("changes carry their index, name and value", "[milter]") {
  const Reply add = parsed('h', std::string("X-Spam\0yes\0", 11));
  CHECK(add.kind == Reply::Kind::add_header);
  CHECK(add.name == "X-Spam");
  CHECK(add.value == "yes");
  const Reply change = parsed('m', std::string("\0\0\0\2Subject\0\0", 13));
  CHECK(change.kind == Reply::Kind::change_header);
  CHECK(change.index == 2);
  CHECK(change.value.empty());
  CHECK(parsed('i', std::string("\0\0\0\0A\0b\0", 8)).kind == Reply::Kind::insert_header);
  CHECK(refused('h', std::string("X-Spam\0", 7)) == "header change is not a name and a value");
  CHECK(refused('m', "ab") == "header change without an index");

  CHECK(parsed('+', std::string("<a@b>\0", 6)).value == "<a@b>");
  CHECK(parsed('2', std::string("<a@b>\0NOTIFY=NEVER\0", 19)).value == "<a@b>");
  CHECK(parsed('-', std::string("<a@b>\0", 6)).kind == Reply::Kind::delete_recipient);
  CHECK(parsed('e', std::string("<>\0SIZE=1\0", 10)).value == "<>");
  CHECK(refused('+', std::string("<a@b>\0x\0", 8)) == "expected one NUL-terminated string");
  CHECK(parsed('q', std::string("spam\0", 5)).value == "spam");
  CHECK(parsed('b', "new body\r\n").value == "new body\r\n");
}
