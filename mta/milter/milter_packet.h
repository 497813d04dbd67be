// The milter protocol's packets (Sendmail's libmilter protocol, version 6,
// as Postfix's src/milter/milter8.c speaks it): the commands stokend sends,
// the framing of what comes back, and the parsing of each reply.
//
// A packet is a 4-octet big-endian length, then that many octets: one
// command or reply letter and its data. Strings in the data end in NUL.
//
// Contract: encoding never fails. PacketReader takes octets as they arrive
// and hands out whole packets; a length of 0 or over its limit is an error
// that sticks (the stream cannot be resynchronised). parse_reply() never
// throws and accepts exactly the reply formats below, so anything else a
// milter sends is "garbage", which the caller answers with the milter's
// default action.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace stokend::milter {

inline constexpr std::uint32_t protocol_version = 6;

// Commands (SMFIC_*).
namespace command {
inline constexpr char abort = 'A';
inline constexpr char body = 'B';
inline constexpr char connect = 'C';
inline constexpr char macro = 'D';
inline constexpr char end_of_body = 'E';
inline constexpr char helo = 'H';
inline constexpr char header = 'L';
inline constexpr char mail = 'M';
inline constexpr char end_of_headers = 'N';
inline constexpr char option_negotiation = 'O';
inline constexpr char quit = 'Q';
inline constexpr char rcpt = 'R';
inline constexpr char data = 'T';
}  // namespace command

// Actions a milter may take at the end of the body (SMFIF_*): negotiated.
namespace action {
inline constexpr std::uint32_t add_headers = 0x01;
inline constexpr std::uint32_t change_body = 0x02;
inline constexpr std::uint32_t add_recipients = 0x04;
inline constexpr std::uint32_t delete_recipients = 0x08;
inline constexpr std::uint32_t change_headers = 0x10;
inline constexpr std::uint32_t quarantine = 0x20;
inline constexpr std::uint32_t change_sender = 0x40;
inline constexpr std::uint32_t add_recipients_with_args = 0x80;
inline constexpr std::uint32_t set_macro_lists = 0x100;
inline constexpr std::uint32_t all_offered = 0x1ff;
}  // namespace action

// Protocol steps a milter may ask us to leave out or not to wait for (SMFIP_*).
namespace step {
inline constexpr std::uint32_t no_connect = 0x01;
inline constexpr std::uint32_t no_helo = 0x02;
inline constexpr std::uint32_t no_mail = 0x04;
inline constexpr std::uint32_t no_rcpt = 0x08;
inline constexpr std::uint32_t no_body = 0x10;
inline constexpr std::uint32_t no_headers = 0x20;
inline constexpr std::uint32_t no_end_of_headers = 0x40;
inline constexpr std::uint32_t no_reply_header = 0x80;
inline constexpr std::uint32_t no_unknown = 0x100;
inline constexpr std::uint32_t no_data = 0x200;
inline constexpr std::uint32_t skip = 0x400;  // the milter may answer a body chunk "skip"
inline constexpr std::uint32_t rcpt_rejected = 0x800;
inline constexpr std::uint32_t no_reply_connect = 0x1000;
inline constexpr std::uint32_t no_reply_helo = 0x2000;
inline constexpr std::uint32_t no_reply_mail = 0x4000;
inline constexpr std::uint32_t no_reply_rcpt = 0x8000;
inline constexpr std::uint32_t no_reply_data = 0x10000;
inline constexpr std::uint32_t no_reply_unknown = 0x20000;
inline constexpr std::uint32_t no_reply_end_of_headers = 0x40000;
inline constexpr std::uint32_t no_reply_body = 0x80000;
inline constexpr std::uint32_t header_leading_space = 0x100000;
// What stokend offers: every step may be left out or left unanswered; the
// rejected-recipient and leading-space variants are not offered.
inline constexpr std::uint32_t all_offered = 0x0ff7ff & ~rcpt_rejected;
}  // namespace step

// One whole packet: its letter and data.
struct Packet {
  char code = 0;
  std::string data;
};

// A command packet, framed.
std::string encode(char code, std::string_view data = {});
// SMFIC_OPTNEG: version, actions, steps.
std::string encode_option_negotiation(std::uint32_t actions, std::uint32_t steps);
// SMFIC_MACRO for the command `for_command`: name, NUL, value, NUL, ...
std::string encode_macros(char for_command,
                          const std::vector<std::pair<std::string, std::string>>& macros);
// SMFIC_CONNECT: host name, family ('4', '6', 'U' unix, 'L' local), port, address.
std::string encode_connect(std::string_view host_name, std::string_view address,
                           std::uint16_t port);
// NUL-terminated strings in a row, the data of HELO, MAIL, RCPT, HEADER.
std::string encode_strings(char code, const std::vector<std::string_view>& strings);

class PacketReader {
 public:
  explicit PacketReader(std::size_t max_packet) : max_packet_(max_packet) {}

  void append(std::string_view octets) { buffer_.append(octets); }
  // The next whole packet; nullopt when more octets are needed or on error.
  std::optional<Packet> next();
  // The length prefix was 0 or over the limit: the stream is not milter.
  bool failed() const { return failed_; }
  std::size_t buffered() const { return buffer_.size() - consumed_; }

 private:
  std::size_t max_packet_;
  std::string buffer_;
  std::size_t consumed_ = 0;
  bool failed_ = false;
};

// A reply, parsed by its letter (SMFIR_*).
struct Reply {
  enum class Kind {
    option_negotiation,  // 'O': version, actions, steps
    accept,              // 'a'
    continue_,           // 'c'
    discard,             // 'd'
    reject,              // 'r'
    tempfail,            // 't'
    reply_code,          // 'y': code, enhanced, text lines
    progress,            // 'p'
    skip,                // 's'
    quarantine,          // 'q': reason
    add_header,          // 'h': name, value
    insert_header,       // 'i': index, name, value
    change_header,       // 'm': index, name, value (empty value: delete)
    replace_body,        // 'b': a chunk of the new body
    add_recipient,       // '+' and '2': address (arguments ignored)
    delete_recipient,    // '-': address
    change_sender,       // 'e': address (arguments ignored)
    set_macro_list,      // 'l' in negotiation only, ignored
    shutdown,            // '4'
    connection_failed,   // 'f'
  };
  Kind kind = Kind::continue_;
  std::uint32_t version = 0;  // option_negotiation
  std::uint32_t actions = 0;
  std::uint32_t steps = 0;
  std::uint32_t index = 0;        // insert_header, change_header
  std::string name;               // header name
  std::string value;              // header value, address, reason, body chunk
  int code = 0;                   // reply_code: 4xx or 5xx
  std::string enhanced;           // reply_code: "5.7.1" when the text starts with one
  std::vector<std::string> text;  // reply_code: the lines, without code and enhanced code
};

struct ReplyParse {
  std::optional<Reply> reply;
  std::string error;  // why not, when reply is empty
};

ReplyParse parse_reply(const Packet& packet);

}  // namespace stokend::milter
