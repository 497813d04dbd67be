// See stoken_send.h. The options of both stoken commands are read here;
// `stoken check` runs in stoken_check.cc.
#include "admin/stoken_send.h"

#include <spdlog/spdlog.h>

#include <charconv>
#include <fstream>
#include <iostream>
#include <iterator>
#include <optional>
#include <sstream>

#include "admin/stoken_check.h"
#include "admin/stoken_session.h"
#include "mta/client/remote_client.h"

namespace stokend::admin {

const char* const stoken_usage =
    R"(       stokenctl stoken send --server HOST:PORT|--domain DOMAIN --from ADDRESS
                 --to ADDRESS... --token TOKEN...|--token-file FILE [--mytoken TOKEN...]
                 [--dialect lhlo|ehlo-sync] [--tls implicit|starttls] [--ca-file FILE]
                 [--tls-name NAME] [--dns-server IP[:PORT]] [--timeout SECONDS]
                 [--body FILE] [--show-transcript] [--show-tokens]
       stokenctl stoken check --server HOST:PORT|--domain DOMAIN --to ADDRESS
                 (--submission HOST:PORT --user ADDRESS --password P|--password-file FILE
                  | --token TOKEN --from ADDRESS)
                 [--maildir PATH] [--dialect auto|lhlo|ehlo-sync]
                 [--auth-user USER --auth-password P|--auth-password-file FILE]
                 [--tls implicit|starttls] [--ca-file FILE] [--tls-name NAME]
                 [--dns-server IP[:PORT]] [--timeout SECONDS] [--json] [--show-transcript]
)";

namespace {

constexpr int exit_success = 0;
constexpr int exit_failure = 1;
constexpr int exit_usage = 2;

struct UsageError {
  explicit UsageError(std::string text) : message(std::move(text)) {}
  std::string message;
};

struct SendOptions {
  std::string from;
  std::vector<std::string> to;
  std::vector<std::string> tokens;
  std::vector<std::string> my_tokens;
  std::string token_file;
  std::string dialect = "lhlo";
  std::string body_file;
};

std::string read_file_or_stdin(const std::string& path) {
  if (path.empty() || path == "-") {
    return std::string(std::istreambuf_iterator<char>(std::cin), {});
  }
  std::ifstream in(path, std::ios::binary);
  if (!in) throw std::runtime_error("cannot read " + path);
  return std::string(std::istreambuf_iterator<char>(in), {});
}

std::vector<std::string> read_tokens(const std::string& path) {
  std::istringstream lines(read_file_or_stdin(path));
  std::vector<std::string> tokens;
  std::string line;
  while (std::getline(lines, line)) {
    while (!line.empty() && (line.back() == '\r' || line.back() == ' ')) line.pop_back();
    if (!line.empty() && line.front() != '#') tokens.push_back(line);
  }
  return tokens;
}

bool is_token_delivery(const client::RecipientResult& result) {
  return result.status == client::DeliveryStatus::delivered &&
         (result.enhanced_code == "2.1.12" || result.enhanced_code == "2.1.13");
}

int run_send(const StokenConnectOptions& connect, const SendOptions& send, std::ostream& out,
             std::ostream& err) {
  std::vector<std::string> tokens = send.tokens;
  if (!send.token_file.empty()) tokens = read_tokens(send.token_file);
  if (tokens.size() != send.to.size()) {
    throw UsageError("give one token per --to, in the same order (" +
                     std::to_string(send.to.size()) + " recipients, " +
                     std::to_string(tokens.size()) + " tokens)");
  }
  if (!send.my_tokens.empty() && send.my_tokens.size() != send.to.size()) {
    throw UsageError("give one --mytoken per --to, or none");
  }
  const std::string message = as_crlf_message(read_file_or_stdin(send.body_file));
  const bool ehlo_sync = send.dialect == "ehlo-sync";

  StokenSession session(connect, out);
  std::string error;
  const auto targets = session.find_targets(error);
  if (targets.empty()) {
    err << "stokenctl: " << error << '\n';
    return exit_failure;
  }
  std::string last_failure;
  const StokenTarget* reached = nullptr;
  for (const auto& target : targets) {
    auto failure = session.connect(target, ehlo_sync ? Protocol::smtp : Protocol::lmtp);
    if (!failure) {
      reached = &target;
      break;
    }
    last_failure = failure->reason;
  }
  if (!reached) {
    err << "stokenctl: cannot reach a Token Server: " << last_failure << '\n';
    return exit_failure;
  }
  // rfcdraft/ §7.2: STOKEN in the LHLO reply under TLS marks a Token Server.
  if (!ehlo_sync && !session.capabilities().has("STOKEN")) {
    err << "stokenctl: " << reached->describe()
        << " does not announce STOKEN after LHLO: not a Token Server\n";
    return exit_failure;
  }

  std::vector<std::optional<std::string>> refused(send.to.size());  // at AUTH
  if (!ehlo_sync || session.capabilities().offers_sasl("STOKEN")) {
    bool authenticated = false;
    for (std::size_t i = 0; i < send.to.size() && !authenticated; ++i) {
      auto result = session.command(client::auth_stoken_command(send.to[i], tokens[i]));
      if (!result.reply) {
        err << "stokenctl: AUTH STOKEN: " << (result.failure ? result.failure->reason : "no reply")
            << '\n';
        return exit_failure;
      }
      if (result.reply->code == 235) {
        authenticated = true;
      } else {
        refused[i] = result.reply->to_string();
        if (result.reply->code != 535) break;  // not about this token: no use trying others
      }
    }
  }

  client::Envelope envelope;
  envelope.sender = send.from;
  std::vector<std::size_t> sent;
  for (std::size_t i = 0; i < send.to.size(); ++i) {
    if (refused[i]) continue;
    envelope.recipients.push_back(send.to[i]);
    std::string parameters = "STOKEN=" + tokens[i];
    if (!send.my_tokens.empty()) parameters += " MYSTOKEN=" + send.my_tokens[i];
    envelope.recipient_parameters.push_back(parameters);
    sent.push_back(i);
  }
  if (ehlo_sync) {
    envelope.mail_parameters = "SYNC";
    envelope.reply_per_recipient = true;
  }
  std::vector<std::string> lines(send.to.size());
  int status = exit_success;
  for (std::size_t i = 0; i < send.to.size(); ++i) {
    if (refused[i]) {
      lines[i] = send.to[i] + ": refused at AUTH STOKEN: " + *refused[i];
      status = exit_failure;
    }
  }
  if (!sent.empty()) {
    auto result = session.transaction(envelope, message);
    for (std::size_t position = 0; position < sent.size(); ++position) {
      const auto& answer = result.recipients[position];
      const std::string& address = send.to[sent[position]];
      std::string verdict;
      if (is_token_delivery(answer)) {
        verdict =
            answer.enhanced_code == "2.1.13" ? "delivered, permanent token returned" : "delivered";
      } else {
        status = exit_failure;
        verdict = answer.status == client::DeliveryStatus::permanent ? "refused"
                  : answer.status == client::DeliveryStatus::delivered
                      ? "accepted without a token reply"
                      : "not delivered (temporary)";
      }
      const std::string reply = answer.reply_line();
      lines[sent[position]] = address + ": " + verdict + ": " +
                              (connect.show_tokens ? reply : shorten_tokens_in(reply));
      const auto fields = client::parse_token_reply(answer.enhanced_code, answer.text);
      if (!fields.permanent_token.empty()) {
        lines[sent[position]] +=
            "\n  permanent token: " +
            (connect.show_tokens ? fields.permanent_token : shorten_token(fields.permanent_token));
      }
    }
  } else {
    status = exit_failure;
  }
  session.close();
  for (const auto& line : lines) out << line << '\n';
  return status;
}

// Reads `stoken send|check` options; throws UsageError.
struct ParsedArguments {
  std::string command;
  StokenConnectOptions connect;
  SendOptions send;
  CheckOptions check;
};

ParsedArguments parse(const std::vector<std::string>& arguments) {
  ParsedArguments parsed;
  if (arguments.empty()) throw UsageError("stoken needs a command: send or check");
  parsed.command = arguments[0];
  if (parsed.command != "send" && parsed.command != "check") {
    throw UsageError("unknown stoken command '" + parsed.command + "' (expected send or check)");
  }
  bool token_given = false;
  for (std::size_t i = 1; i < arguments.size(); ++i) {
    const std::string& option = arguments[i];
    auto value = [&]() -> const std::string& {
      if (i + 1 == arguments.size()) throw UsageError(option + " needs a value");
      return arguments[++i];
    };
    if (option == "--server") {
      parsed.connect.server = value();
    } else if (option == "--domain") {
      parsed.connect.domain = value();
    } else if (option == "--tls") {
      parsed.connect.tls = value();
      if (parsed.connect.tls != "implicit" && parsed.connect.tls != "starttls") {
        throw UsageError("--tls: expected implicit or starttls");
      }
    } else if (option == "--tls-name") {
      parsed.connect.tls_name = value();
    } else if (option == "--ca-file") {
      parsed.connect.ca_file = value();
    } else if (option == "--dns-server") {
      parsed.connect.dns_servers = value();
    } else if (option == "--timeout") {
      const std::string& text = value();
      unsigned seconds = 0;
      auto [end, error] = std::from_chars(text.data(), text.data() + text.size(), seconds);
      if (error != std::errc{} || end != text.data() + text.size() || seconds == 0 ||
          seconds > 3600) {
        throw UsageError("--timeout: expected seconds, 1-3600");
      }
      parsed.connect.timeout = std::chrono::seconds(seconds);
    } else if (option == "--show-transcript") {
      parsed.connect.show_transcript = true;
    } else if (option == "--show-tokens") {
      parsed.connect.show_tokens = true;
    } else if (option == "--from") {
      parsed.send.from = parsed.check.from = value();
    } else if (option == "--to") {
      parsed.send.to.push_back(value());
      parsed.check.to = parsed.send.to.back();
    } else if (option == "--token") {
      parsed.send.tokens.push_back(value());
      parsed.check.token = parsed.send.tokens.back();
      token_given = true;
    } else if (option == "--token-file") {
      parsed.send.token_file = value();
      token_given = true;
    } else if (option == "--mytoken") {
      parsed.send.my_tokens.push_back(value());
    } else if (option == "--dialect") {
      const std::string& dialect = value();
      const bool automatic = parsed.command == "check" && dialect == "auto";
      if (dialect != "lhlo" && dialect != "ehlo-sync" && !automatic) {
        throw UsageError(parsed.command == "check" ? "--dialect: expected auto, lhlo or ehlo-sync"
                                                   : "--dialect: expected lhlo or ehlo-sync");
      }
      parsed.send.dialect = parsed.check.dialect = dialect;
    } else if (option == "--auth-user") {
      parsed.check.auth_user = value();
    } else if (option == "--auth-password") {
      parsed.check.auth_password = value();
    } else if (option == "--auth-password-file") {
      parsed.check.auth_password_file = value();
    } else if (option == "--body") {
      parsed.send.body_file = value();
    } else if (option == "--submission") {
      parsed.check.submission = value();
    } else if (option == "--user") {
      parsed.check.user = value();
    } else if (option == "--password") {
      parsed.check.password = value();
    } else if (option == "--password-file") {
      parsed.check.password_file = value();
    } else if (option == "--maildir") {
      parsed.check.maildir = value();
    } else if (option == "--json") {
      parsed.check.json = true;
    } else {
      throw UsageError("unknown option " + option);
    }
  }
  if (parsed.connect.server.empty() == parsed.connect.domain.empty()) {
    throw UsageError("give one of --server HOST:PORT and --domain DOMAIN");
  }
  if (!parsed.connect.server.empty() && !parse_host_port(parsed.connect.server)) {
    throw UsageError("--server: expected HOST:PORT, got '" + parsed.connect.server + "'");
  }
  if (parsed.command == "send") {
    if (parsed.send.from.empty()) throw UsageError("stoken send needs --from");
    if (parsed.send.to.empty()) throw UsageError("stoken send needs --to");
    if (!token_given) throw UsageError("stoken send needs --token or --token-file");
    if (!parsed.send.tokens.empty() && !parsed.send.token_file.empty()) {
      throw UsageError("give --token or --token-file, not both");
    }
    if (!parsed.check.auth_user.empty()) throw UsageError("--auth-user is an option of check");
  } else {
    if (parsed.send.to.size() != 1) throw UsageError("stoken check needs one --to");
    const bool minting = !parsed.check.submission.empty();
    if (minting == token_given) {
      throw UsageError(
          "stoken check needs --submission (with --user and --password-file) or "
          "--token (with --from), not both");
    }
    if (minting && (parsed.check.user.empty() ||
                    parsed.check.password.empty() == parsed.check.password_file.empty())) {
      throw UsageError("--submission needs --user and one of --password and --password-file");
    }
    if (!minting && parsed.check.from.empty()) throw UsageError("--token needs --from");
    const bool login =
        !parsed.check.auth_password.empty() || !parsed.check.auth_password_file.empty();
    if (!parsed.check.auth_user.empty() &&
        parsed.check.auth_password.empty() == parsed.check.auth_password_file.empty()) {
      throw UsageError("--auth-user needs one of --auth-password and --auth-password-file");
    }
    if (login && parsed.check.auth_user.empty()) {
      throw UsageError("--auth-password needs --auth-user");
    }
    if (!parsed.check.auth_user.empty() && parsed.check.dialect == "lhlo") {
      throw UsageError("--auth-user is for the EHLO + SYNC form: an LHLO session uses AUTH STOKEN");
    }
  }
  return parsed;
}

}  // namespace

int run_stoken_command(const std::vector<std::string>& arguments, std::ostream& out,
                       std::ostream& err) {
  // The transcript and the result lines say what happened; the client's
  // own log lines would say it again on err.
  spdlog::set_level(spdlog::level::warn);
  try {
    ParsedArguments parsed = parse(arguments);
    if (parsed.command == "send") return run_send(parsed.connect, parsed.send, out, err);
    return run_check(parsed.connect, parsed.check, out, err);
  } catch (const UsageError& error) {
    err << "stokenctl: " << error.message << "\nusage:\n" << stoken_usage;
    return exit_usage;
  } catch (const std::exception& error) {
    err << "stokenctl: " << error.what() << '\n';
    return exit_failure;
  }
}

}  // namespace stokend::admin
