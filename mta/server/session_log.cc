// See session_log.h.
#include "mta/server/session_log.h"

#include <cctype>

#include "message/headers.h"

namespace stokend::server {

std::string logged_path(std::string_view argument) {
  constexpr std::size_t max_path = 256;
  // Only a path right after "FROM:" / "TO:" (spaces allowed): a '<' further
  // on may be inside a parameter, and a parameter may be a token.
  const auto colon = argument.find(':');
  if (colon == std::string_view::npos) return {};
  const auto open = argument.find_first_not_of(' ', colon + 1);
  if (open == std::string_view::npos || argument[open] != '<') return {};
  const auto close = argument.find('>', open + 1);
  if (close == std::string_view::npos) return {};
  return std::string(argument.substr(open + 1, std::min(close - open - 1, max_path)));
}

std::string logged_protocol(const SessionState& state) {
  if (state.lmtp()) return "LMTP";
  return state.extended() ? "ESMTP" : "SMTP";
}

std::string logged_message_id(std::string_view message) {
  auto id =
      message::find_header(message::parse_headers(message::header_section(message)), "Message-ID");
  if (!id) return {};
  std::string_view text = *id;
  while (!text.empty() && (text.front() == ' ' || text.front() == '\t' || text.front() == '<'))
    text.remove_prefix(1);
  while (!text.empty() && (text.back() == ' ' || text.back() == '\t' || text.back() == '>'))
    text.remove_suffix(1);
  return std::string(text.substr(0, 256));
}

std::string logged_mechanism(std::string_view argument) {
  std::string mechanism;
  for (char c : argument.substr(0, argument.find(' '))) {
    const auto octet = static_cast<unsigned char>(c);
    if (!std::isalnum(octet) && c != '-' && c != '_') break;
    if (mechanism.size() == 20) break;
    mechanism += static_cast<char>(std::toupper(octet));
  }
  return mechanism;
}

}  // namespace stokend::server
