// See dsn_parameters.h.
#include "mta/server/dsn_parameters.h"

#include <algorithm>
#include <cctype>

#include "common/ascii.h"
#include "message/xtext.h"

namespace stokend::server {
namespace {

Reply syntax_error(std::string text) { return Reply{501, "5.5.4", std::move(text)}; }

// RFC 5322 atext, the characters of an atom (addr-type, RFC 3461 §4.2).
bool is_atext(unsigned char c) {
  return std::isalnum(c) || std::string_view("!#$%&'*+-/=?^_`{|}~").find(static_cast<char>(c)) !=
                                std::string_view::npos;
}

// A keyword given twice: RFC 5321 §4.1.2 allows each parameter once.
std::optional<Reply> repeated(const std::vector<EsmtpParameter>& parameters,
                              std::string_view keyword) {
  const auto count = std::count_if(parameters.begin(), parameters.end(),
                                   [&](const EsmtpParameter& p) { return p.keyword == keyword; });
  if (count > 1) return syntax_error(std::string(keyword) + " given more than once");
  return std::nullopt;
}

std::optional<std::uint8_t> parse_notify(std::string_view value) {
  std::uint8_t bits = 0;
  std::size_t position = 0;
  while (true) {
    const std::size_t comma = value.find(',', position);
    const std::string item = ascii_uppercase(value.substr(position, comma - position));
    std::uint8_t bit = 0;
    if (item == "NEVER") {
      bit = queue::notify::never;
    } else if (item == "SUCCESS") {
      bit = queue::notify::success;
    } else if (item == "FAILURE") {
      bit = queue::notify::failure;
    } else if (item == "DELAY") {
      bit = queue::notify::delay;
    } else {
      return std::nullopt;
    }
    if ((bits & bit) != 0) return std::nullopt;  // listed twice
    bits |= bit;
    if (comma == std::string_view::npos) break;
    position = comma + 1;
  }
  // RFC 3461 §4.1: NEVER "MUST NOT" be combined with the others.
  if ((bits & queue::notify::never) != 0 && bits != queue::notify::never) return std::nullopt;
  return bits;
}

}  // namespace

bool is_dsn_mail_keyword(std::string_view keyword) {
  return keyword == "RET" || keyword == "ENVID";
}

bool is_dsn_rcpt_keyword(std::string_view keyword) {
  return keyword == "NOTIFY" || keyword == "ORCPT";
}

MailDsnResult parse_mail_dsn(const std::vector<EsmtpParameter>& parameters) {
  MailDsn dsn;
  for (const std::string_view keyword : {"RET", "ENVID"}) {
    if (auto error = repeated(parameters, keyword)) return {std::nullopt, *error};
  }
  for (const EsmtpParameter& parameter : parameters) {
    if (parameter.keyword == "RET") {
      const std::string value = ascii_uppercase(parameter.value);
      if (value == "FULL") {
        dsn.ret = queue::DsnReturn::full;
      } else if (value == "HDRS") {
        dsn.ret = queue::DsnReturn::headers;
      } else {
        return {std::nullopt, syntax_error("Syntax: RET=FULL or RET=HDRS")};
      }
    } else if (parameter.keyword == "ENVID") {
      if (parameter.value.empty()) {
        return {std::nullopt, syntax_error("Syntax: ENVID=xtext, an envelope id is required")};
      }
      if (parameter.value.size() > max_envid_length) {
        return {std::nullopt, syntax_error("ENVID longer than 100 characters")};
      }
      auto decoded = message::decode_xtext(parameter.value);
      if (!decoded) {
        return {std::nullopt,
                syntax_error("ENVID is not xtext of printable US-ASCII (RFC 3461 section 4)")};
      }
      dsn.envelope_id = std::move(*decoded);
    }
  }
  return {std::move(dsn), {}};
}

RcptDsnResult parse_rcpt_dsn(const std::vector<EsmtpParameter>& parameters, bool utf8) {
  queue::RecipientDsn dsn;
  for (const std::string_view keyword : {"NOTIFY", "ORCPT"}) {
    if (auto error = repeated(parameters, keyword)) return {std::nullopt, *error};
  }
  for (const EsmtpParameter& parameter : parameters) {
    if (parameter.keyword == "NOTIFY") {
      const auto bits = parse_notify(parameter.value);
      if (!bits) {
        return {std::nullopt,
                syntax_error("Syntax: NOTIFY=NEVER or a list of SUCCESS, FAILURE, DELAY")};
      }
      dsn.notify = *bits;
    } else if (parameter.keyword == "ORCPT") {
      const std::string_view value = parameter.value;
      if (value.size() > max_orcpt_length) {
        return {std::nullopt, syntax_error("ORCPT longer than 500 characters")};
      }
      const std::size_t semicolon = value.find(';');
      const std::string_view type = value.substr(0, semicolon);
      if (semicolon == std::string_view::npos || type.empty() ||
          !std::all_of(type.begin(), type.end(),
                       [](char c) { return is_atext(static_cast<unsigned char>(c)); })) {
        return {std::nullopt, syntax_error("Syntax: ORCPT=addr-type;xtext")};
      }
      const std::string_view address = value.substr(semicolon + 1);
      std::string lower_type = ascii_lowercase(type);
      std::optional<std::string> decoded = lower_type == "utf-8"
                                               ? message::decode_utf8_address_xtext(address, utf8)
                                               : message::decode_xtext(address);
      if (!decoded || decoded->empty()) {
        return {std::nullopt,
                syntax_error(lower_type == "utf-8"
                                 ? "ORCPT address is not utf-8-addr-xtext (RFC 6533 section 3)"
                                 : "ORCPT address is not xtext of printable US-ASCII "
                                   "(RFC 3461 section 4)")};
      }
      dsn.original_type = std::move(lower_type);
      dsn.original_address = std::move(*decoded);
    }
  }
  return {std::move(dsn), {}};
}

}  // namespace stokend::server
