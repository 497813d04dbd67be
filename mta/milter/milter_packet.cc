// The milter packet codec; see milter_packet.h.
#include "mta/milter/milter_packet.h"

#include <cctype>

namespace stokend::milter {
namespace {

void put_u32(std::string& out, std::uint32_t value) {
  out += static_cast<char>((value >> 24) & 0xff);
  out += static_cast<char>((value >> 16) & 0xff);
  out += static_cast<char>((value >> 8) & 0xff);
  out += static_cast<char>(value & 0xff);
}

std::uint32_t get_u32(std::string_view data) {
  return (static_cast<std::uint32_t>(static_cast<unsigned char>(data[0])) << 24) |
         (static_cast<std::uint32_t>(static_cast<unsigned char>(data[1])) << 16) |
         (static_cast<std::uint32_t>(static_cast<unsigned char>(data[2])) << 8) |
         static_cast<std::uint32_t>(static_cast<unsigned char>(data[3]));
}

// Splits data into its NUL-terminated strings; nullopt unless data is
// exactly `count` of them (the last one's NUL included).
std::optional<std::vector<std::string>> split_strings(std::string_view data, std::size_t count) {
  std::vector<std::string> strings;
  while (!data.empty()) {
    const auto nul = data.find('\0');
    if (nul == std::string_view::npos) return std::nullopt;
    strings.emplace_back(data.substr(0, nul));
    data.remove_prefix(nul + 1);
  }
  if (strings.size() != count) return std::nullopt;
  return strings;
}

// At least `count` NUL-terminated strings, the first `count` returned: the
// milter may add ESMTP arguments after an address (SMFIR_ADDRCPT_PAR,
// SMFIR_CHGFROM), which stokend does not apply.
std::optional<std::vector<std::string>> leading_strings(std::string_view data, std::size_t count) {
  std::vector<std::string> strings;
  while (!data.empty()) {
    const auto nul = data.find('\0');
    if (nul == std::string_view::npos) return std::nullopt;
    strings.emplace_back(data.substr(0, nul));
    data.remove_prefix(nul + 1);
  }
  if (strings.size() < count) return std::nullopt;
  strings.resize(count);
  return strings;
}

bool is_digit(char c) { return c >= '0' && c <= '9'; }

// "5.7.1" at the start of text (RFC 3463 §2: class.subject.detail, subject
// and detail up to three digits), whose class matches the reply's.
std::size_t enhanced_code_length(std::string_view text, char reply_class) {
  if (text.size() < 5 || text[0] != reply_class || text[1] != '.') return 0;
  std::size_t at = 2;
  for (int part = 0; part < 2; ++part) {
    const std::size_t start = at;
    while (at < text.size() && is_digit(text[at]) && at - start < 3) ++at;
    if (at == start) return 0;
    if (part == 0) {
      if (at >= text.size() || text[at] != '.') return 0;
      ++at;
    }
  }
  if (at < text.size() && text[at] != ' ') return 0;
  return at;
}

// SMFIR_REPLYCODE: "xyz text", or several lines "xyz-text\r\n...xyz text",
// 4xx or 5xx only (a milter cannot make the session say 250), every line
// the same code, printable text that cannot break the SMTP reply.
ReplyParse parse_reply_code(std::string_view data) {
  if (data.empty() || data.back() != '\0') return {std::nullopt, "reply code not NUL-terminated"};
  data.remove_suffix(1);
  Reply reply;
  reply.kind = Reply::Kind::reply_code;
  std::string_view code_text;
  std::size_t line_number = 0;
  while (true) {
    const auto end = data.find("\r\n");
    const std::string_view line = data.substr(0, end);
    if (line.size() < 3 || !is_digit(line[0]) || !is_digit(line[1]) || !is_digit(line[2])) {
      return {std::nullopt, "reply code line without a 3-digit code"};
    }
    if (line_number == 0) {
      code_text = line.substr(0, 3);
      if (code_text[0] != '4' && code_text[0] != '5') {
        return {std::nullopt, "reply code " + std::string(code_text) + " is not 4xx or 5xx"};
      }
    } else if (line.substr(0, 3) != code_text) {
      return {std::nullopt, "reply code lines with different codes"};
    }
    const bool last = end == std::string_view::npos;
    if (line.size() > 3 && line[3] != (last ? ' ' : '-')) {
      return {std::nullopt, "reply code line with a bad separator"};
    }
    std::string_view text = line.size() > 3 ? line.substr(4) : std::string_view{};
    for (const char c : text) {
      if (static_cast<unsigned char>(c) < ' ' || c == 127) {
        return {std::nullopt, "reply code text with a control character"};
      }
    }
    if (line_number == 0) {
      if (const auto length = enhanced_code_length(text, code_text[0])) {
        reply.enhanced = std::string(text.substr(0, length));
      }
    }
    reply.text.emplace_back(text);
    ++line_number;
    if (last) break;
    data.remove_prefix(end + 2);
  }
  reply.code = (code_text[0] - '0') * 100 + (code_text[1] - '0') * 10 + (code_text[2] - '0');
  return {std::move(reply), {}};
}

ReplyParse header_reply(Reply::Kind kind, std::string_view data, bool indexed) {
  Reply reply;
  reply.kind = kind;
  if (indexed) {
    if (data.size() < 4) return {std::nullopt, "header change without an index"};
    reply.index = get_u32(data);
    data.remove_prefix(4);
  }
  auto strings = split_strings(data, 2);
  if (!strings) return {std::nullopt, "header change is not a name and a value"};
  reply.name = std::move((*strings)[0]);
  reply.value = std::move((*strings)[1]);
  return {std::move(reply), {}};
}

ReplyParse one_string(Reply::Kind kind, std::string_view data, bool arguments_allowed) {
  auto strings = arguments_allowed ? leading_strings(data, 1) : split_strings(data, 1);
  if (!strings) return {std::nullopt, "expected one NUL-terminated string"};
  Reply reply;
  reply.kind = kind;
  reply.value = std::move((*strings)[0]);
  return {std::move(reply), {}};
}

ReplyParse bare(Reply::Kind kind, std::string_view data) {
  if (!data.empty()) return {std::nullopt, "unexpected data after the reply letter"};
  Reply reply;
  reply.kind = kind;
  return {std::move(reply), {}};
}

}  // namespace

std::string encode(char code, std::string_view data) {
  std::string out;
  out.reserve(5 + data.size());
  put_u32(out, static_cast<std::uint32_t>(data.size() + 1));
  out += code;
  out += data;
  return out;
}

std::string encode_option_negotiation(std::uint32_t actions, std::uint32_t steps) {
  std::string data;
  put_u32(data, protocol_version);
  put_u32(data, actions);
  put_u32(data, steps);
  return encode(command::option_negotiation, data);
}

std::string encode_macros(char for_command,
                          const std::vector<std::pair<std::string, std::string>>& macros) {
  std::string data(1, for_command);
  for (const auto& [name, value] : macros) {
    data += name;
    data += '\0';
    data += value;
    data += '\0';
  }
  return encode(command::macro, data);
}

std::string encode_connect(std::string_view host_name, std::string_view address,
                           std::uint16_t port) {
  std::string data(host_name);
  data += '\0';
  if (address.empty()) {
    data += 'U';  // unknown: no port or address follows
    return encode(command::connect, data);
  }
  data += address.find(':') != std::string_view::npos ? '6' : '4';
  data += static_cast<char>((port >> 8) & 0xff);
  data += static_cast<char>(port & 0xff);
  data += address;
  data += '\0';
  return encode(command::connect, data);
}

std::string encode_strings(char code, const std::vector<std::string_view>& strings) {
  std::string data;
  for (const auto string : strings) {
    data += string;
    data += '\0';
  }
  return encode(code, data);
}

std::optional<Packet> PacketReader::next() {
  if (failed_ || buffered() < 4) return std::nullopt;
  const std::string_view pending = std::string_view(buffer_).substr(consumed_);
  const std::uint32_t length = get_u32(pending);
  if (length == 0 || length > max_packet_) {
    failed_ = true;
    return std::nullopt;
  }
  if (pending.size() < 4 + static_cast<std::size_t>(length)) return std::nullopt;
  Packet packet;
  packet.code = pending[4];
  packet.data = std::string(pending.substr(5, length - 1));
  consumed_ += 4 + length;
  // Drop what has been read once it is most of the buffer, so a long
  // conversation does not keep every packet.
  if (consumed_ > buffer_.size() / 2) {
    buffer_.erase(0, consumed_);
    consumed_ = 0;
  }
  return packet;
}

ReplyParse parse_reply(const Packet& packet) {
  const std::string_view data = packet.data;
  switch (packet.code) {
    case 'O': {
      // Version, actions, steps; then optional macro lists (ignored: we
      // send our fixed set, as Postfix does when milter_macro_* are unset).
      if (data.size() < 12) return {std::nullopt, "option negotiation reply too short"};
      Reply reply;
      reply.kind = Reply::Kind::option_negotiation;
      reply.version = get_u32(data);
      reply.actions = get_u32(data.substr(4));
      reply.steps = get_u32(data.substr(8));
      return {std::move(reply), {}};
    }
    case 'a':
      return bare(Reply::Kind::accept, data);
    case 'c':
      return bare(Reply::Kind::continue_, data);
    case 'd':
      return bare(Reply::Kind::discard, data);
    case 'r':
      return bare(Reply::Kind::reject, data);
    case 't':
      return bare(Reply::Kind::tempfail, data);
    case 'p':
      return bare(Reply::Kind::progress, data);
    case 's':
      return bare(Reply::Kind::skip, data);
    case '4':
      return bare(Reply::Kind::shutdown, data);
    case 'f':
      return bare(Reply::Kind::connection_failed, data);
    case 'y':
      return parse_reply_code(data);
    case 'q':
      return one_string(Reply::Kind::quarantine, data, false);
    case 'h':
      return header_reply(Reply::Kind::add_header, data, false);
    case 'i':
      return header_reply(Reply::Kind::insert_header, data, true);
    case 'm':
      return header_reply(Reply::Kind::change_header, data, true);
    case 'b': {
      Reply reply;
      reply.kind = Reply::Kind::replace_body;
      reply.value = std::string(data);
      return {std::move(reply), {}};
    }
    case '+':
      return one_string(Reply::Kind::add_recipient, data, false);
    case '2':
      return one_string(Reply::Kind::add_recipient, data, true);
    case '-':
      return one_string(Reply::Kind::delete_recipient, data, false);
    case 'e':
      return one_string(Reply::Kind::change_sender, data, true);
    case 'l': {
      Reply reply;
      reply.kind = Reply::Kind::set_macro_list;
      return {std::move(reply), {}};
    }
    default: {
      const auto code = static_cast<unsigned char>(packet.code);
      if (std::isprint(code))
        return {std::nullopt, "unknown reply '" + std::string(1, packet.code) + "'"};
      const char* digits = "0123456789abcdef";
      return {std::nullopt,
              std::string("unknown reply 0x") + digits[code >> 4] + digits[code & 15]};
    }
  }
}

}  // namespace stokend::milter
