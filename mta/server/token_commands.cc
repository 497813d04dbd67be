// See token_commands.h.
#include "mta/server/token_commands.h"

#include <vector>

#include "common/ascii.h"
#include "common/base64.h"
#include "mta/server/sasl.h"

namespace stokend::server {
namespace {

std::vector<std::string_view> split_spaces(std::string_view text) {
  std::vector<std::string_view> words;
  std::size_t position = 0;
  while (position < text.size()) {
    if (text[position] == ' ') {
      ++position;
      continue;
    }
    std::size_t end = text.find(' ', position);
    if (end == std::string_view::npos) end = text.size();
    words.push_back(text.substr(position, end - position));
    position = end;
  }
  return words;
}

TokenCommandParseResult failure(int code, std::string enhanced, std::string text) {
  return {std::nullopt, Reply{code, std::move(enhanced), std::move(text)}};
}

TokenCommandParseResult parse_addresses(const std::vector<std::string_view>& words,
                                        std::size_t first, TokenCommandArguments arguments,
                                        std::string_view syntax) {
  if (words.size() <= first || words.size() > first + 2) {
    return failure(501, "5.5.4", std::string("Syntax: ") + std::string(syntax));
  }
  auto remote = parse_token_address(words[first]);
  if (!remote) return failure(501, "5.1.3", "Incorrect remote address");
  arguments.remote = *remote;
  if (words.size() == first + 2) {
    auto local = parse_token_address(words[first + 1]);
    if (!local) return failure(501, "5.1.7", "Incorrect local address");
    arguments.local = *local;
  }
  return {arguments, {}};
}

}  // namespace

std::optional<message::Mailbox> parse_token_address(std::string_view word) {
  if (word.size() >= 2 && word.front() == '<' && word.back() == '>') {
    word = word.substr(1, word.size() - 2);
  }
  if (word.empty() || word.front() == '@') return std::nullopt;
  auto mailbox = message::parse_mailbox(word, true);
  if (!mailbox || mailbox->domain.empty() || mailbox->domain_is_literal) return std::nullopt;
  return mailbox;
}

std::optional<StokenCredentials> decode_stoken_response(std::string_view base64) {
  auto decoded = decode_base64(base64);
  if (!decoded) return std::nullopt;
  std::string_view message = *decoded;
  std::size_t separator = message.find('\0');
  std::size_t separator_length = 1;
  if (separator == std::string_view::npos) {
    separator = message.find("\\0");
    separator_length = 2;
  }
  if (separator == std::string_view::npos || separator == 0) return std::nullopt;
  StokenCredentials credentials{std::string(message.substr(0, separator)),
                                std::string(message.substr(separator + separator_length))};
  if (credentials.token.empty() || credentials.token.find('\0') != std::string::npos) {
    return std::nullopt;
  }
  return credentials;
}

TokenCommandParseResult parse_genstoken_arguments(std::string_view argument) {
  constexpr std::string_view syntax = "GENSTOKEN PERM|TEMP remote-address [local-address]";
  auto words = split_spaces(argument);
  if (words.empty()) return failure(501, "5.5.4", std::string("Syntax: ") + std::string(syntax));
  TokenCommandArguments arguments;
  std::string kind = ascii_lowercase(words[0]);
  if (kind == "temp") {
    arguments.kind = tokens::TokenKind::temporary;
  } else if (kind == "perm") {
    arguments.kind = tokens::TokenKind::permanent;
  } else {
    return failure(501, "5.5.4", std::string("Syntax: ") + std::string(syntax));
  }
  return parse_addresses(words, 1, std::move(arguments), syntax);
}

TokenCommandParseResult parse_revstoken_arguments(std::string_view argument) {
  return parse_addresses(split_spaces(argument), 0, {}, "REVSTOKEN remote-address [local-address]");
}

}  // namespace stokend::server
