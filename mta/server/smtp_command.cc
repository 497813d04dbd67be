// SMTP command line and MAIL/RCPT argument parsing (RFC 5321 §4.1.1,
// §4.1.2). See smtp_command.h for the contract.
//
// The parsers check syntax only. Whether a parameter is supported (555,
// RFC 5321 §4.1.1.11), whether a SIZE is acceptable or a relay trick is
// allowed is the session's policy.
#include "mta/server/smtp_command.h"

#include <array>

#include "common/ascii.h"

namespace stokend::server {
namespace {

bool is_alpha_or_digit(unsigned char byte) {
  return (byte >= 'A' && byte <= 'Z') || (byte >= 'a' && byte <= 'z') ||
         (byte >= '0' && byte <= '9');
}

struct VerbName {
  std::string_view name;
  Verb verb;
};

constexpr std::array<VerbName, 17> verb_names{{
    {"EHLO", Verb::ehlo},
    {"HELO", Verb::helo},
    {"LHLO", Verb::lhlo},
    {"MAIL", Verb::mail},
    {"RCPT", Verb::rcpt},
    {"DATA", Verb::data},
    {"BDAT", Verb::bdat},
    {"RSET", Verb::rset},
    {"NOOP", Verb::noop},
    {"QUIT", Verb::quit},
    {"VRFY", Verb::vrfy},
    {"EXPN", Verb::expn},
    {"HELP", Verb::help},
    {"STARTTLS", Verb::starttls},
    {"AUTH", Verb::auth},
    {"GENSTOKEN", Verb::genstoken},
    {"REVSTOKEN", Verb::revstoken},
}};

Reply syntax_error(std::string text) { return Reply{501, "5.5.4", std::move(text)}; }

// RFC 5321 §4.1.2 esmtp-keyword = (ALPHA / DIGIT) *(ALPHA / DIGIT / "-").
bool is_esmtp_keyword(std::string_view keyword) {
  if (keyword.empty() || !is_alpha_or_digit(static_cast<unsigned char>(keyword.front()))) {
    return false;
  }
  for (const char character : keyword) {
    const auto byte = static_cast<unsigned char>(character);
    if (!is_alpha_or_digit(byte) && byte != '-') return false;
  }
  return true;
}

// RFC 5321 §4.1.2 esmtp-value = 1*(%d33-60 / %d62-126), extended with
// UTF8-non-ascii by RFC 6531 §3.3 (only checked to be non-ASCII here;
// parameters that carry UTF-8 validate it themselves).
bool is_esmtp_value(std::string_view value) {
  if (value.empty()) return false;
  for (const char character : value) {
    const auto byte = static_cast<unsigned char>(character);
    const bool ascii_ok = byte >= 33 && byte <= 126 && byte != '=';
    if (!ascii_ok && byte < 0x80) return false;
  }
  return true;
}

bool is_digits(std::string_view text) {
  if (text.empty()) return false;
  for (const char character : text) {
    if (character < '0' || character > '9') return false;
  }
  return true;
}

// Syntax of the parameters whose grammar stokend knows. Returns an error
// text, or empty when the parameter is well-formed.
std::string check_known_parameter(const EsmtpParameter& parameter) {
  if (parameter.keyword == "SIZE") {
    // RFC 1870 §3: size-value = 1*20DIGIT.
    if (!parameter.has_value || !is_digits(parameter.value) || parameter.value.size() > 20) {
      return "SIZE needs a decimal number of octets";
    }
  } else if (parameter.keyword == "BODY") {
    // RFC 6152 §2 and RFC 3030 §3: 7BIT / 8BITMIME / BINARYMIME.
    if (!parameter.has_value || (!equals_ignoring_case(parameter.value, "7BIT") &&
                                 !equals_ignoring_case(parameter.value, "8BITMIME") &&
                                 !equals_ignoring_case(parameter.value, "BINARYMIME"))) {
      return "BODY must be 7BIT, 8BITMIME or BINARYMIME";
    }
  } else if (parameter.keyword == "SMTPUTF8") {
    // RFC 6531 §3.4: the parameter has no value.
    if (parameter.has_value) return "SMTPUTF8 takes no value";
  }
  return "";
}

// Mail-parameters = esmtp-param *(SP esmtp-param), esmtp-param =
// esmtp-keyword ["=" esmtp-value] (RFC 5321 §4.1.2). Returns an error text,
// or empty on success.
std::string parse_parameters(std::string_view text, std::vector<EsmtpParameter>& parameters) {
  std::size_t start = 0;
  while (start <= text.size()) {
    std::size_t end = text.find(' ', start);
    if (end == std::string_view::npos) end = text.size();
    const std::string_view item = text.substr(start, end - start);
    if (item.empty()) return "parameters must be separated by single spaces";
    const std::size_t equals = item.find('=');
    EsmtpParameter parameter;
    const std::string_view keyword = item.substr(0, equals);
    if (!is_esmtp_keyword(keyword)) return "invalid parameter keyword";
    parameter.keyword = ascii_uppercase(keyword);
    if (equals != std::string_view::npos) {
      const std::string_view value = item.substr(equals + 1);
      if (!is_esmtp_value(value)) return "invalid value for parameter " + parameter.keyword;
      parameter.value.assign(value);
      parameter.has_value = true;
    }
    if (find_parameter(parameters, parameter.keyword) != nullptr) {
      return "duplicate parameter " + parameter.keyword;
    }
    if (auto problem = check_known_parameter(parameter); !problem.empty()) return problem;
    parameters.push_back(std::move(parameter));
    start = end + 1;
  }
  return "";
}

enum class Direction { mail, rcpt };

ArgumentParseResult parse_argument(std::string_view argument, Direction direction, bool utf8) {
  const bool is_mail = direction == Direction::mail;
  const std::string_view prefix = is_mail ? "FROM:" : "TO:";
  ArgumentParseResult result;
  if (!starts_with_ignoring_case(argument, prefix)) {
    result.error = syntax_error(is_mail ? "Syntax: MAIL FROM:<address> [parameters]"
                                        : "Syntax: RCPT TO:<address> [parameters]");
    return result;
  }
  std::string_view rest = argument.substr(prefix.size());
  // RFC 5321 allows no space after the colon; one is tolerated, as Postfix does.
  if (!rest.empty() && rest.front() == ' ') rest.remove_prefix(1);
  // Trailing spaces are tolerated too (some clients send them); they carry nothing.
  while (!rest.empty() && rest.back() == ' ') rest.remove_suffix(1);

  const auto address_error = [&](const std::string& reason) {
    return is_mail ? Reply{501, "5.1.7", "Bad sender address syntax: " + reason}
                   : Reply{501, "5.1.3", "Bad recipient address syntax: " + reason};
  };

  MailOrRcptArgument parsed;
  std::size_t path_length = 0;
  constexpr std::string_view postmaster = "<Postmaster>";
  if (!is_mail && starts_with_ignoring_case(rest, postmaster)) {
    // RFC 5321 §4.1.1.3: "RCPT TO:<Postmaster>" without a domain must be
    // accepted; it means the postmaster of the receiving server.
    parsed.path.mailbox.local_part.assign(rest.substr(1, postmaster.size() - 2));
    path_length = postmaster.size();
  } else {
    // MAIL: parse with UTF-8 allowed first, to find where the parameters
    // start; whether UTF-8 was allowed depends on SMTPUTF8 among them.
    auto path = message::parse_path(rest, is_mail, is_mail || utf8);
    if (!path.path) {
      result.error = address_error(path.error);
      return result;
    }
    parsed.path = std::move(*path.path);
    path_length = path.consumed;
  }

  std::string_view parameters = rest.substr(path_length);
  if (!parameters.empty()) {
    if (parameters.front() != ' ') {
      result.error = syntax_error("Unexpected text after the address");
      return result;
    }
    parameters.remove_prefix(1);
    if (auto problem = parse_parameters(parameters, parsed.parameters); !problem.empty()) {
      result.error = syntax_error("Invalid parameters: " + problem);
      return result;
    }
  }

  if (is_mail && find_parameter(parsed.parameters, "SMTPUTF8") == nullptr) {
    // Without SMTPUTF8 the address must be ASCII (RFC 6531 §3.4).
    auto ascii_path = message::parse_path(rest, true, false);
    if (!ascii_path.path) {
      result.error = address_error(ascii_path.error);
      return result;
    }
  }
  result.argument = std::move(parsed);
  return result;
}

}  // namespace

Command parse_command(std::string_view line) {
  Command command;
  const std::size_t space = line.find(' ');
  const std::string_view verb = line.substr(0, space);
  command.verb_text.assign(verb);
  if (space != std::string_view::npos) command.argument.assign(line.substr(space + 1));
  for (const auto& entry : verb_names) {
    if (equals_ignoring_case(verb, entry.name)) {
      command.verb = entry.verb;
      break;
    }
  }
  return command;
}

ArgumentParseResult parse_mail_argument(std::string_view argument) {
  return parse_argument(argument, Direction::mail, true);
}

ArgumentParseResult parse_rcpt_argument(std::string_view argument, bool utf8) {
  return parse_argument(argument, Direction::rcpt, utf8);
}

const EsmtpParameter* find_parameter(const std::vector<EsmtpParameter>& parameters,
                                     std::string_view keyword) {
  for (const auto& parameter : parameters) {
    if (equals_ignoring_case(parameter.keyword, keyword)) return &parameter;
  }
  return nullptr;
}

}  // namespace stokend::server
