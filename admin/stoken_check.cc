// See stoken_check.h.
#include "admin/stoken_check.h"

#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <optional>
#include <random>
#include <sstream>
#include <vector>

#include "common/base64.h"
#include "mta/client/remote_client.h"

namespace stokend::admin {
namespace {

enum class Verdict { pass, fail, skip };

struct Check {
  std::string name;
  std::string section;
  Verdict verdict = Verdict::skip;
  std::string seen;
};

const char* verdict_word(Verdict verdict) {
  return verdict == Verdict::pass ? "PASS" : verdict == Verdict::fail ? "FAIL" : "SKIP";
}

std::string json_string(std::string_view text) {
  std::string out = "\"";
  for (char c : text) {
    if (c == '"' || c == '\\') {
      out += '\\';
      out += c;
    } else if (static_cast<unsigned char>(c) < 0x20) {
      char escaped[8];
      std::snprintf(escaped, sizeof escaped, "\\u%04x", c);
      out += escaped;
    } else {
      out += c;
    }
  }
  return out + "\"";
}

// The token with its last character changed: same shape, wrong MAC.
std::string tampered(std::string token) {
  if (!token.empty()) token.back() = token.back() == 'A' ? 'B' : 'A';
  return token;
}

std::string random_word() {
  std::random_device device;
  std::uniform_int_distribution<int> digit(0, 35);
  std::string word;
  for (int i = 0; i < 10; ++i) word += "0123456789abcdefghijklmnopqrstuvwxyz"[digit(device)];
  return word;
}

std::string domain_of(const std::string& address) {
  const auto at = address.rfind('@');
  return at == std::string::npos ? std::string() : address.substr(at + 1);
}

std::string reply_or_failure(const client::CommandResult& result) {
  if (result.reply) return shorten_tokens_in(result.reply->to_string());
  return result.failure ? result.failure->reason : "no reply";
}

bool file_holds(const std::filesystem::path& folder, const std::string& marker) {
  std::error_code error;
  for (const char* sub : {"new", "cur"}) {
    for (const auto& entry : std::filesystem::directory_iterator(folder / sub, error)) {
      std::ifstream in(entry.path(), std::ios::binary);
      std::string content((std::istreambuf_iterator<char>(in)), {});
      if (content.find(marker) != std::string::npos) return true;
    }
  }
  return false;
}

class Checker {
 public:
  Checker(const StokenConnectOptions& connect, const CheckOptions& options,
          std::ostream& transcript)
      : connect_(connect), options_(options), session_(connect, transcript) {}

  // Runs every check; false when the server could not be checked at all
  // (fatal_ says why).
  bool run();

  std::vector<Check> checks;
  std::string fatal;

 private:
  void add(std::string name, std::string section, Verdict verdict, std::string seen) {
    checks.push_back({std::move(name), std::move(section), verdict, std::move(seen)});
  }
  bool connect_lhlo();
  bool mint_token();
  std::optional<client::Reply> submission_command(const std::string& line);
  void check_delivery();
  void check_revocation();

  const StokenConnectOptions& connect_;
  const CheckOptions& options_;
  StokenSession session_;
  StokenTarget target_;
  std::string from_;
  std::string token_;
  std::string permanent_;  // the token to use from the second delivery on
  std::optional<StokenTarget> submission_;
};

bool Checker::connect_lhlo() {
  auto failure = session_.connect(target_, Protocol::lmtp);
  if (failure) fatal = "cannot reach " + target_.describe() + ": " + failure->reason;
  return !failure;
}

std::optional<client::Reply> Checker::submission_command(const std::string& line) {
  auto failure = session_.connect(*submission_, Protocol::smtp);
  if (failure) {
    fatal = "submission " + options_.submission + ": " + failure->reason;
    return std::nullopt;
  }
  std::string password = options_.password;
  if (!options_.password_file.empty()) {
    std::ifstream in(options_.password_file);
    std::getline(in, password);
    if (!in && password.empty()) {
      fatal = "cannot read " + options_.password_file;
      return std::nullopt;
    }
  }
  std::string plain;
  plain.push_back('\0');
  plain += options_.user;
  plain.push_back('\0');
  plain += password;
  // The transcript shows the AUTH PLAIN response shortened, like a token.
  auto auth = session_.command("AUTH PLAIN " + encode_base64(plain));
  if (!auth.reply || auth.reply->code != 235) {
    fatal = "submission login as " + options_.user + " refused: " + reply_or_failure(auth);
    return std::nullopt;
  }
  auto answer = session_.command(line);
  session_.close();
  if (!answer.reply) {
    fatal = "submission " + options_.submission + ": " + reply_or_failure(answer);
    return std::nullopt;
  }
  return answer.reply;
}

bool Checker::mint_token() {
  from_ = options_.from.empty() ? "stokenctl-check-" + random_word() + "@example.invalid"
                                : options_.from;
  if (options_.submission.empty()) {
    token_ = options_.token;
    return true;
  }
  auto host_port = parse_host_port(options_.submission);
  if (!host_port) {
    fatal = "--submission: expected HOST:PORT";
    return false;
  }
  std::string error;
  // The submission service takes the same TLS as the Token Server (--tls).
  auto found =
      session_.resolve(host_port->host, host_port->port, connect_.tls == "implicit", error);
  if (found.empty()) {
    fatal = "submission: " + error;
    return false;
  }
  submission_ = found.front();
  // rfcdraft/ §5.2: GENSTOKEN TEMP remote-address [local-address].
  auto reply = submission_command("GENSTOKEN TEMP " + from_ + " " + options_.to);
  if (!reply) return false;
  std::istringstream words(reply->text());
  words >> token_;
  if (reply->code != 250 || reply->enhanced_code != "2.1.11" || token_.empty()) {
    fatal = "GENSTOKEN refused: " + shorten_tokens_in(reply->to_string());
    return false;
  }
  add("genstoken", "5.2", Verdict::pass, "GENSTOKEN TEMP gave 250 2.1.11 and a token");
  return true;
}

bool Checker::run() {
  // Discovery (rfcdraft/ §6.1): the SRV records behind the domain.
  if (!connect_.domain.empty()) {
    std::string error;
    auto records = session_.srv_records(error);
    if (records.empty()) {
      add("discovery-srv", "6.1", Verdict::fail,
          error.empty() ? "no _submissions._tcp or _submission._tcp record for " + connect_.domain
                        : error);
    } else {
      std::string seen;
      for (const auto& record : records) seen += (seen.empty() ? "" : "; ") + record;
      add("discovery-srv", "6.1", Verdict::pass, seen);
    }
  } else {
    add("discovery-srv", "6.1", Verdict::skip, "--server given: no SRV lookup");
  }
  std::string error;
  auto targets = session_.find_targets(error);
  if (targets.empty()) {
    fatal = error;
    return false;
  }
  target_ = targets.front();

  // §6.3: the certificate must carry the target's name.
  if (auto failure = session_.connect(target_, Protocol::lmtp)) {
    if (failure->tls_failed || failure->enhanced_code.starts_with("4.7")) {
      add("certificate", "6.3", Verdict::fail, failure->reason);
    }
    fatal = "cannot reach " + target_.describe() + ": " + failure->reason;
    return false;
  }
  add("certificate", "6.3", Verdict::pass, "verified for " + target_.tls_name);
  // §3.1: STOKEN in the LHLO reply under TLS.
  if (!session_.capabilities().has("STOKEN")) {
    add("stoken-after-lhlo", "3.1", Verdict::fail, "no STOKEN in the LHLO reply under TLS");
    fatal = target_.describe() + " is no Token Server: no STOKEN after LHLO";
    return false;
  }
  add("stoken-after-lhlo", "3.1", Verdict::pass, "STOKEN in the LHLO reply under TLS");
  session_.close();

  // §3.2: never before TLS, and in the LHLO reply only.
  if (target_.implicit_tls) {
    add("no-stoken-before-tls", "3.2", Verdict::skip, "implicit TLS: nothing is said before TLS");
  } else if (auto failure = session_.connect(target_, Protocol::lmtp, TlsPolicy::never)) {
    add("no-stoken-before-tls", "3.2", Verdict::skip, "plaintext LHLO failed: " + failure->reason);
  } else {
    const bool offered =
        session_.capabilities().has("STOKEN") ||
        session_.capabilities().parameters("AUTH").value_or("").find("STOKEN") != std::string::npos;
    add("no-stoken-before-tls", "3.2", offered ? Verdict::fail : Verdict::pass,
        offered ? "STOKEN announced in plaintext, before STARTTLS" : "no STOKEN before STARTTLS");
    session_.close();
  }
  if (auto failure = session_.connect(target_, Protocol::smtp)) {
    add("no-stoken-after-ehlo", "3.2", Verdict::skip, "EHLO failed: " + failure->reason);
  } else {
    const bool offered = session_.capabilities().has("STOKEN");
    add("no-stoken-after-ehlo", "3.2", offered ? Verdict::fail : Verdict::pass,
        offered ? "STOKEN announced after EHLO (the LHLO reply only)" : "no STOKEN after EHLO");
    session_.close();
  }

  if (!mint_token()) return false;

  // §7.3.2: the token opens the session for its recipient only, and only
  // as issued (§4.4.5: the MAC covers it).
  if (!connect_lhlo()) return false;
  const std::string stranger = "stokenctl-check-" + random_word() + "@" + domain_of(options_.to);
  auto wrong = session_.command(client::auth_stoken_command(stranger, token_));
  add("auth-wrong-recipient", "7.3.2",
      wrong.reply && wrong.reply->code == 535 ? Verdict::pass : Verdict::fail,
      "AUTH STOKEN for another recipient: " + reply_or_failure(wrong));
  if (wrong.reply && wrong.reply->code == 235) {
    if (!connect_lhlo()) return false;
  }
  auto forged = session_.command(client::auth_stoken_command(options_.to, tampered(token_)));
  add("auth-tampered-token", "4.4.5",
      forged.reply && forged.reply->code == 535 ? Verdict::pass : Verdict::fail,
      "AUTH STOKEN with a tampered token: " + reply_or_failure(forged));
  if (forged.reply && forged.reply->code == 235) {
    if (!connect_lhlo()) return false;
  }
  auto right = session_.command(client::auth_stoken_command(options_.to, token_));
  if (!right.reply || right.reply->code != 235) {
    add("auth-right-recipient", "7.3.2", Verdict::fail,
        "AUTH STOKEN with the token: " + reply_or_failure(right));
    for (const char* name : {"mail-other-sender", "rcpt-without-stoken", "delivery",
                             "stored-before-reply", "permanent-token", "revocation"}) {
      add(name, "-", Verdict::skip, "AUTH STOKEN did not succeed");
    }
    return true;
  }
  add("auth-right-recipient", "7.3.2", Verdict::pass, reply_or_failure(right));

  // §7.4: MAIL must name the sender the token was issued to.
  auto other =
      session_.command("MAIL FROM:<stokenctl-other-" + random_word() + "@example.invalid>");
  const bool other_refused = other.reply && other.reply->code >= 500;
  add("mail-other-sender", "7.4", other_refused ? Verdict::pass : Verdict::fail,
      "MAIL for another sender: " + reply_or_failure(other));
  if (other.reply && other.reply->is_positive()) session_.command("RSET");

  // §7.5: every RCPT carries STOKEN=.
  auto mail = session_.command("MAIL FROM:<" + from_ + ">");
  if (!mail.reply || !mail.reply->is_positive()) {
    add("rcpt-without-stoken", "7.5", Verdict::skip, "MAIL refused: " + reply_or_failure(mail));
  } else {
    auto bare = session_.command("RCPT TO:<" + options_.to + ">");
    add("rcpt-without-stoken", "7.5",
        bare.reply && bare.reply->code >= 500 ? Verdict::pass : Verdict::fail,
        "RCPT without STOKEN=: " + reply_or_failure(bare));
    session_.command("RSET");
  }
  check_delivery();
  check_revocation();
  session_.close();
  return true;
}

void Checker::check_delivery() {
  const std::string marker = "stokenctl-check-" + random_word();
  const std::string message = "From: <" + from_ + ">\r\nTo: <" + options_.to +
                              ">\r\nSubject: stokenctl stoken check\r\n\r\n" + marker + "\r\n";
  auto deliver = [&](const std::string& token) {
    client::Envelope envelope;
    envelope.sender = from_;
    envelope.recipients = {options_.to};
    envelope.recipient_parameters = {"STOKEN=" + token};
    return session_.transaction(envelope, message);
  };
  auto result = deliver(token_);
  const auto& answer = result.recipients.front();
  const bool delivered = answer.status == client::DeliveryStatus::delivered &&
                         (answer.enhanced_code == "2.1.12" || answer.enhanced_code == "2.1.13");
  // §8.1: the reply comes once the store committed: look now, not later.
  const bool stored = !options_.maildir.empty() && file_holds(options_.maildir, marker);
  add("delivery", "8.2", delivered ? Verdict::pass : Verdict::fail,
      shorten_tokens_in(answer.reply_line()));
  if (options_.maildir.empty()) {
    add("stored-before-reply", "8.1", Verdict::skip, "no --maildir to look in");
  } else if (!delivered) {
    add("stored-before-reply", "8.1", Verdict::skip, "not delivered");
  } else {
    add("stored-before-reply", "8.1", stored ? Verdict::pass : Verdict::fail,
        stored ? "in " + options_.maildir + " when the reply came"
               : "not in " + options_.maildir + " when the reply came");
  }
  if (!delivered) {
    add("permanent-token", "8.3", Verdict::skip, "not delivered");
    return;
  }
  const auto fields = client::parse_token_reply(answer.enhanced_code, answer.text);
  if (answer.enhanced_code == "2.1.13" && fields.permanent_token.empty()) {
    add("permanent-token", "8.3", Verdict::fail, "2.1.13 without a permanent token");
    return;
  }
  permanent_ = fields.permanent_token.empty() ? token_ : fields.permanent_token;
  // The permanent token in a new session, as the Remote Client would.
  session_.close();
  if (!connect_lhlo()) return;
  auto auth = session_.command(client::auth_stoken_command(options_.to, permanent_));
  if (!auth.reply || auth.reply->code != 235) {
    add("permanent-token", "8.3", Verdict::fail,
        "AUTH STOKEN with the permanent token: " + reply_or_failure(auth));
    return;
  }
  auto again = deliver(permanent_).recipients.front();
  const bool ok =
      again.status == client::DeliveryStatus::delivered && again.enhanced_code == "2.1.12";
  add("permanent-token", "8.3", ok ? Verdict::pass : Verdict::fail,
      std::string(answer.enhanced_code == "2.1.13" ? "exchanged at 2.1.13; " : "") +
          "next delivery: " + shorten_tokens_in(again.reply_line()));
}

void Checker::check_revocation() {
  if (!submission_) {
    add("revocation", "5.3", Verdict::skip, "needs --submission to send REVSTOKEN");
    return;
  }
  if (permanent_.empty()) {
    add("revocation", "5.3", Verdict::skip, "no working token to revoke");
    return;
  }
  session_.close();
  auto reply = submission_command("REVSTOKEN " + from_ + " " + options_.to);
  if (!reply || reply->code != 250) {
    add("revocation", "5.3", Verdict::fail, "REVSTOKEN: " + (reply ? reply->to_string() : fatal));
    fatal.clear();
    return;
  }
  if (!connect_lhlo()) return;
  auto auth = session_.command(client::auth_stoken_command(options_.to, permanent_));
  add("revocation", "5.3", auth.reply && auth.reply->code == 535 ? Verdict::pass : Verdict::fail,
      "AUTH STOKEN after REVSTOKEN: " + reply_or_failure(auth));
}

}  // namespace

int run_check(const StokenConnectOptions& connect, const CheckOptions& options, std::ostream& out,
              std::ostream& err) {
  // With --json the transcript goes to standard error: out is the document.
  Checker checker(connect, options, options.json ? err : out);
  const bool ran = checker.run();
  bool failed = !ran;
  for (const auto& check : checker.checks) failed |= check.verdict == Verdict::fail;
  if (options.json) {
    out << "{\"server\": " << json_string(connect.server.empty() ? connect.domain : connect.server)
        << ", \"checks\": [";
    for (std::size_t i = 0; i < checker.checks.size(); ++i) {
      const auto& check = checker.checks[i];
      out << (i ? ", " : "") << "{\"name\": " << json_string(check.name)
          << ", \"section\": " << json_string(check.section)
          << ", \"result\": " << json_string(verdict_word(check.verdict))
          << ", \"seen\": " << json_string(check.seen) << "}";
    }
    out << "], \"error\": " << (ran ? "null" : json_string(checker.fatal))
        << ", \"passed\": " << (failed ? "false" : "true") << "}\n";
  } else {
    for (const auto& check : checker.checks) {
      out << verdict_word(check.verdict) << "  " << check.name << "  (section " << check.section
          << ")  " << check.seen << '\n';
    }
  }
  if (!ran) err << "stokenctl: " << checker.fatal << '\n';
  return failed ? 1 : 0;
}

}  // namespace stokend::admin
