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
#include "mta/client/capabilities.h"
#include "mta/client/remote_client.h"

namespace stokend::admin {
namespace {

enum class Verdict { pass, fail, skip };

// The two session forms (rfcdraft/ Appendix D): LHLO and AUTH STOKEN
// (Section 7), or EHLO with MAIL ... SYNC (Section 10, Dovecot's plugin).
enum class Form { lhlo, ehlo_sync };

Protocol protocol_of(Form form) { return form == Form::lhlo ? Protocol::lmtp : Protocol::smtp; }

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

// The token with its last but one character changed: same shape, wrong
// MAC. Not the last: in unpadded base64 that one carries bits a decoder
// may ignore (RFC 4648 §3.5), so changing it need not change the MAC (the
// Dovecot plugin's decoder took an A for a B there).
std::string tampered(std::string token) {
  if (token.size() >= 2) {
    char& c = token[token.size() - 2];
    c = c == 'A' ? 'g' : 'A';
  }
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
  std::string form_reason;  // the session form used and why, for the report

 private:
  void add(std::string name, std::string section, Verdict verdict, std::string seen) {
    checks.push_back({std::move(name), std::move(section), verdict, std::move(seen)});
  }
  bool choose_form();
  bool open_session();
  bool read_passwords();
  bool log_in(const std::string& user, const std::string& password, const std::string& where);
  bool mint_token();
  std::optional<client::Reply> submission_command(const std::string& line);
  bool check_auth_stoken();
  std::optional<client::CommandResult> authenticate(const std::string& token);
  void check_rcpt_tokens();
  void probe_rcpt(const char* name, const char* section, const std::string& sender,
                  const std::string& line, const std::string& what, bool needs_7_30);
  void check_delivery();
  void check_revocation();
  std::string mail_command(const std::string& sender) const {
    return "MAIL FROM:<" + sender + ">" + (form_ == Form::ehlo_sync ? " SYNC" : "");
  }

  const StokenConnectOptions& connect_;
  const CheckOptions& options_;
  StokenSession session_;
  StokenTarget target_;
  std::string from_;
  std::string token_;
  std::string permanent_;  // the token to use from the second delivery on
  std::optional<StokenTarget> submission_;
  Form form_ = Form::lhlo;
  bool auth_stoken_ = true;          // the session authenticates with AUTH STOKEN
  std::string submission_password_;  // --password, or the first line of --password-file
  std::string auth_password_;        // the same for --auth-user
};

bool Checker::open_session() {
  auto failure = session_.connect(target_, protocol_of(form_));
  if (failure) {
    fatal = "cannot reach " + target_.describe() + ": " + failure->reason;
    return false;
  }
  // rfcdraft/ E.4: Dovecot's plugin wants an account before MAIL even in
  // the SYNC form; --auth-user gives it one. Never in an LHLO session.
  if (form_ == Form::ehlo_sync && !options_.auth_user.empty()) {
    return log_in(options_.auth_user, auth_password_, "the Token Server");
  }
  return true;
}

// Each password once, before any session: a file is read once, not at
// every login.
bool Checker::read_passwords() {
  const auto read = [this](const std::string& given, const std::string& file,
                           std::string& password) {
    password = given;
    if (file.empty()) return true;
    std::ifstream in(file);
    std::getline(in, password);
    if (!in && password.empty()) {
      fatal = "cannot read " + file;
      return false;
    }
    return true;
  };
  return read(options_.password, options_.password_file, submission_password_) &&
         read(options_.auth_password, options_.auth_password_file, auth_password_);
}

bool Checker::log_in(const std::string& user, const std::string& password,
                     const std::string& where) {
  std::string plain;
  plain.push_back('\0');
  plain += user;
  plain.push_back('\0');
  plain += password;
  // The transcript hides the AUTH PLAIN response (StokenSession::show).
  auto auth = session_.command("AUTH PLAIN " + encode_base64(plain));
  if (!auth.reply || auth.reply->code != 235) {
    fatal = "login at " + where + " as " + user + " refused: " + reply_or_failure(auth);
    return false;
  }
  return true;
}

std::optional<client::Reply> Checker::submission_command(const std::string& line) {
  auto failure = session_.connect(*submission_, Protocol::smtp);
  if (failure) {
    fatal = "submission " + options_.submission + ": " + failure->reason;
    return std::nullopt;
  }
  if (!log_in(options_.user, submission_password_, "submission " + options_.submission)) {
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
  if (!read_passwords()) return false;
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
  if (!choose_form()) return false;
  session_.close();

  // §3.2: never before TLS, and in the LHLO reply only.
  if (target_.implicit_tls) {
    add("no-stoken-before-tls", "3.2", Verdict::skip, "implicit TLS: nothing is said before TLS");
  } else if (auto failure = session_.connect(target_, protocol_of(form_), TlsPolicy::never)) {
    add("no-stoken-before-tls", "3.2", Verdict::skip,
        "plaintext greeting failed: " + failure->reason);
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
  if (!open_session()) return false;
  // Section 10: AUTH STOKEN is optional in the SYNC form. Without it the
  // token is checked at each RCPT, so that is where the refusals are seen.
  auth_stoken_ = form_ == Form::lhlo ||
                 (options_.auth_user.empty() && session_.capabilities().offers_sasl("STOKEN"));
  if (auth_stoken_) {
    // False: AUTH STOKEN failed (checked, reported) or the server went
    // away while being checked (fatal says so).
    if (!check_auth_stoken()) return fatal.empty();
  } else {
    add("auth-stoken", "10", Verdict::skip,
        options_.auth_user.empty()
            ? "no AUTH STOKEN in the EHLO reply (optional in the SYNC form): tokens checked at RCPT"
            : "logged in as " + options_.auth_user + ": tokens checked at RCPT");
    check_rcpt_tokens();
  }
  check_delivery();
  check_revocation();
  session_.close();
  return true;
}

// rfcdraft/ Appendix D.2: LHLO first; with --dialect auto, a refused LHLO
// or one without STOKEN leads to EHLO, and STOKEN in its reply under TLS
// to the SYNC form. --dialect ehlo-sync goes there directly (a server
// that follows the draft announces nothing after EHLO: only configuration
// selects that form for it). The certificate (§6.3) is checked on the way.
bool Checker::choose_form() {
  const std::string& dialect = options_.dialect;
  form_ = dialect == "ehlo-sync" ? Form::ehlo_sync : Form::lhlo;
  auto failure = session_.connect(target_, protocol_of(form_));
  bool lhlo_failed = false;
  if (failure && failure->hello_refused && dialect == "auto") {
    add("stoken-after-lhlo", "3.1", Verdict::fail, "LHLO refused: " + failure->reason);
    lhlo_failed = true;
    form_ = Form::ehlo_sync;
    failure = session_.connect(target_, Protocol::smtp);
  }
  if (failure) {
    if (failure->tls_failed || failure->enhanced_code.starts_with("4.7")) {
      add("certificate", "6.3", Verdict::fail, failure->reason);
    }
    fatal = "cannot reach " + target_.describe() + ": " + failure->reason;
    return false;
  }
  add("certificate", "6.3", Verdict::pass, "verified for " + target_.tls_name);
  if (form_ == Form::lhlo) {
    // §3.1: STOKEN in the LHLO reply under TLS.
    if (session_.capabilities().has("STOKEN")) {
      add("stoken-after-lhlo", "3.1", Verdict::pass, "STOKEN in the LHLO reply under TLS");
      form_reason = "LHLO (Section 7): STOKEN in the LHLO reply";
      return true;
    }
    add("stoken-after-lhlo", "3.1", Verdict::fail, "no STOKEN in the LHLO reply under TLS");
    if (dialect != "auto") {
      fatal = target_.describe() + " is no Token Server: no STOKEN after LHLO";
      return false;
    }
    lhlo_failed = true;
    form_ = Form::ehlo_sync;
    if (auto again = session_.connect(target_, Protocol::smtp)) {
      fatal = "cannot reach " + target_.describe() + ": " + again->reason;
      return false;
    }
  } else if (!lhlo_failed) {
    add("stoken-after-lhlo", "3.1", Verdict::skip, "--dialect ehlo-sync: LHLO not tried");
    form_reason = "EHLO + SYNC (Section 10), as --dialect ehlo-sync asks";
    return true;
  }
  bool announced = session_.capabilities().has("STOKEN");
  std::string where = "the EHLO reply";
  if (!announced && !options_.auth_user.empty()) {
    // Dovecot's plugin adds STOKEN to the capabilities of a logged-in
    // session only: ask again after the login (RFC 4954 §4 lets a server
    // change them).
    if (!log_in(options_.auth_user, auth_password_, "the Token Server")) return false;
    auto again = session_.command("EHLO stokenctl.invalid");
    announced = again.reply && again.reply->is_positive() &&
                client::Capabilities::from_hello_reply(*again.reply).has("STOKEN");
    where = "the EHLO reply after the login";
  }
  if (!announced) {
    fatal = target_.describe() + " is no Token Server: no STOKEN after LHLO or EHLO";
    return false;
  }
  form_reason = "EHLO + SYNC (Section 10): LHLO failed, STOKEN in " + where;
  return true;
}

// The LHLO form (and a SYNC session that offers the mechanism): the token
// opens the session for its recipient only (§7.3.2), and only as issued
// (§4.4.5: the MAC covers it); MAIL must then name the token's sender
// (§7.4) and every RCPT carry STOKEN= (§7.5). False when AUTH STOKEN with
// the right token failed, so nothing after it can be checked.
bool Checker::check_auth_stoken() {
  const std::string stranger = "stokenctl-check-" + random_word() + "@" + domain_of(options_.to);
  auto wrong = session_.command(client::auth_stoken_command(stranger, token_));
  add("auth-wrong-recipient", "7.3.2",
      wrong.reply && wrong.reply->code == 535 ? Verdict::pass : Verdict::fail,
      "AUTH STOKEN for another recipient: " + reply_or_failure(wrong));
  if (wrong.reply && wrong.reply->code == 235) {
    if (!open_session()) return false;
  }
  auto forged = session_.command(client::auth_stoken_command(options_.to, tampered(token_)));
  add("auth-tampered-token", "4.4.5",
      forged.reply && forged.reply->code == 535 ? Verdict::pass : Verdict::fail,
      "AUTH STOKEN with a tampered token: " + reply_or_failure(forged));
  if (forged.reply && forged.reply->code == 235) {
    if (!open_session()) return false;
  }
  auto right = session_.command(client::auth_stoken_command(options_.to, token_));
  if (!right.reply || right.reply->code != 235) {
    add("auth-right-recipient", "7.3.2", Verdict::fail,
        "AUTH STOKEN with the token: " + reply_or_failure(right));
    for (const char* name : {"mail-other-sender", "rcpt-without-stoken", "delivery",
                             "stored-before-reply", "permanent-token", "revocation"}) {
      add(name, "-", Verdict::skip, "AUTH STOKEN did not succeed");
    }
    session_.close();
    return false;
  }
  add("auth-right-recipient", "7.3.2", Verdict::pass, reply_or_failure(right));

  auto other =
      session_.command(mail_command("stokenctl-other-" + random_word() + "@example.invalid"));
  const bool other_refused = other.reply && other.reply->code >= 500;
  add("mail-other-sender", "7.4", other_refused ? Verdict::pass : Verdict::fail,
      "MAIL for another sender: " + reply_or_failure(other));
  if (other.reply && other.reply->is_positive()) session_.command("RSET");

  auto mail = session_.command(mail_command(from_));
  if (!mail.reply || !mail.reply->is_positive()) {
    add("rcpt-without-stoken", "7.5", Verdict::skip, "MAIL refused: " + reply_or_failure(mail));
  } else {
    auto bare = session_.command("RCPT TO:<" + options_.to + ">");
    add("rcpt-without-stoken", "7.5",
        bare.reply && bare.reply->code >= 500 ? Verdict::pass : Verdict::fail,
        "RCPT without STOKEN=: " + reply_or_failure(bare));
    session_.command("RSET");
  }
  return true;
}

// The SYNC form without AUTH STOKEN (Section 10): each RCPT's token is
// verified for the pair (MAIL FROM, recipient) as in §7.5, where a token
// that does not verify gets 550 5.7.30 (row 5) and a missing STOKEN 550
// 5.7.1 (row 3). Another 5yz refusal is reported as a failure with what
// was seen: a Remote Client drops a token on X.7.30 only (§8.6).
void Checker::check_rcpt_tokens() {
  const std::string stranger = "stokenctl-check-" + random_word() + "@" + domain_of(options_.to);
  const std::string other = "stokenctl-other-" + random_word() + "@example.invalid";
  const std::string rcpt = "RCPT TO:<" + options_.to + ">";
  probe_rcpt("rcpt-wrong-recipient", "7.5", from_, "RCPT TO:<" + stranger + "> STOKEN=" + token_,
             "STOKEN= for another recipient", true);
  probe_rcpt("rcpt-tampered-token", "4.4.5", from_, rcpt + " STOKEN=" + tampered(token_),
             "STOKEN= with a tampered token", true);
  probe_rcpt("rcpt-other-sender", "10", other, rcpt + " STOKEN=" + token_,
             "the token under another sender (wrong pair)", true);
  probe_rcpt("rcpt-without-stoken", "10", from_, rcpt, "RCPT without STOKEN= in a SYNC transaction",
             false);
}

// One RCPT in a transaction of its own (MAIL ... SYNC, the RCPT, RSET), so
// that an accepted RCPT cannot stand in for the next probe's; it must be
// refused, with 550 5.7.30 when needs_7_30.
void Checker::probe_rcpt(const char* name, const char* section, const std::string& sender,
                         const std::string& line, const std::string& what, bool needs_7_30) {
  auto mail = session_.command(mail_command(sender));
  if (!mail.reply || !mail.reply->is_positive()) {
    std::string why = "MAIL ... SYNC refused: " + reply_or_failure(mail);
    if (mail.reply && mail.reply->code == 530 && options_.auth_user.empty()) {
      why += " (the server may want an account: --auth-user)";
    }
    // Refusing MAIL for a sender the token was not issued to is fine.
    const bool fine = sender != from_ && mail.reply && mail.reply->code >= 500;
    add(name, section, fine ? Verdict::pass : Verdict::skip, why);
    return;
  }
  auto result = session_.command(line);
  const bool refused = result.reply && result.reply->code >= 500;
  const bool coded = !needs_7_30 || (result.reply && result.reply->code == 550 &&
                                     result.reply->enhanced_code == "5.7.30");
  std::string seen = what + ": " + reply_or_failure(result);
  if (refused && !coded) seen += " (Section 7.5 gives 550 5.7.30)";
  add(name, section, refused && coded ? Verdict::pass : Verdict::fail, seen);
  session_.command("RSET");
}

// Authenticates the session with a token where the form uses AUTH
// STOKEN; the result of the AUTH when it was sent.
std::optional<client::CommandResult> Checker::authenticate(const std::string& token) {
  if (!auth_stoken_) return std::nullopt;
  return session_.command(client::auth_stoken_command(options_.to, token));
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
    if (form_ == Form::ehlo_sync) {
      envelope.mail_parameters = "SYNC";
      envelope.reply_per_recipient = true;
    }
    return session_.transaction(envelope, message);
  };
  auto result = deliver(token_);
  const auto& answer = result.recipients.front();
  const bool accepted = answer.status == client::DeliveryStatus::delivered;
  const bool delivered =
      accepted && (answer.enhanced_code == "2.1.12" || answer.enhanced_code == "2.1.13");
  // §8.1: the reply comes once the store committed: look now, not later.
  const bool stored = !options_.maildir.empty() && file_holds(options_.maildir, marker);
  add("delivery", "8.2", delivered ? Verdict::pass : Verdict::fail,
      shorten_tokens_in(answer.reply_line()) +
          (accepted && !delivered ? " (Section 8.2 gives 2.1.12 or 2.1.13)" : ""));
  if (options_.maildir.empty()) {
    add("stored-before-reply", "8.1", Verdict::skip, "no --maildir to look in");
  } else if (!accepted) {
    add("stored-before-reply", "8.1", Verdict::skip, "not delivered");
  } else {
    add("stored-before-reply", "8.1", stored ? Verdict::pass : Verdict::fail,
        stored ? "in " + options_.maildir + " when the reply came"
               : "not in " + options_.maildir + " when the reply came");
  }
  if (!accepted) {
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
  if (!open_session()) return;
  if (auto auth = authenticate(permanent_); auth && (!auth->reply || auth->reply->code != 235)) {
    add("permanent-token", "8.3", Verdict::fail,
        "AUTH STOKEN with the permanent token: " + reply_or_failure(*auth));
    return;
  }
  auto again = deliver(permanent_).recipients.front();
  const bool ok =
      again.status == client::DeliveryStatus::delivered && again.enhanced_code == "2.1.12";
  add("permanent-token", "8.3", ok ? Verdict::pass : Verdict::fail,
      std::string(answer.enhanced_code == "2.1.13" ? "exchanged at 2.1.13; "
                  : delivered                      ? ""
                                                   : "no 2.1.13, the same token again; ") +
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
  if (!open_session()) return;
  if (auto auth = authenticate(permanent_)) {
    add("revocation", "5.3",
        auth->reply && auth->reply->code == 535 ? Verdict::pass : Verdict::fail,
        "AUTH STOKEN after REVSTOKEN: " + reply_or_failure(*auth));
    return;
  }
  // The SYNC form: the revoked token at RCPT (§7.5 row 5).
  probe_rcpt("revocation", "5.3", from_, "RCPT TO:<" + options_.to + "> STOKEN=" + permanent_,
             "RCPT with the token after REVSTOKEN", true);
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
        << ", \"form\": " << json_string(checker.form_reason) << ", \"checks\": [";
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
    if (!checker.form_reason.empty()) out << "form: " << checker.form_reason << '\n';
    for (const auto& check : checker.checks) {
      out << verdict_word(check.verdict) << "  " << check.name << "  (section " << check.section
          << ")  " << check.seen << '\n';
    }
  }
  if (!ran) err << "stokenctl: " << checker.fatal << '\n';
  return failed ? 1 : 0;
}

}  // namespace stokend::admin
