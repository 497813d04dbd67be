// See stoken_session.h.
#include "admin/stoken_session.h"

#include <arpa/inet.h>
#include <event2/event.h>

#include <charconv>
#include <sstream>

#include "dns/submission_servers.h"
#include "mta/client/client_tls.h"

namespace stokend::admin {
namespace {

bool is_ip_literal(const std::string& host) {
  unsigned char buffer[sizeof(in6_addr)];
  return ::inet_pton(AF_INET, host.c_str(), buffer) == 1 ||
         ::inet_pton(AF_INET6, host.c_str(), buffer) == 1;
}

// Words up to this long are shown whole when a token is shortened.
constexpr std::size_t shortest_hidden_word = 24;
// Longer words in a line are taken for tokens of unknown format.
constexpr std::size_t longest_plain_word = 64;

}  // namespace

std::string StokenTarget::describe() const {
  return host + "[" + address + "]:" + std::to_string(port);
}

std::string shorten_token(std::string_view word) {
  if (word.size() <= shortest_hidden_word) return std::string(word);
  // One word still: a transcript keeps its shape.
  return std::string(word.substr(0, 12)) + "...(+" + std::to_string(word.size() - 12) + ")";
}

std::string shorten_tokens_in(std::string_view line) {
  // Token-sized words: a STOKEN= or MYSTOKEN= value, the response of AUTH
  // STOKEN, a "1-created:" token in a reply, or any word too long to be an
  // address or an id (a token of another format).
  const bool auth_stoken = line.starts_with("AUTH STOKEN ");
  std::string out;
  std::size_t start = 0;
  std::size_t index = 0;
  while (start <= line.size()) {
    std::size_t end = line.find(' ', start);
    if (end == std::string_view::npos) end = line.size();
    std::string_view word = line.substr(start, end - start);
    const auto equals = word.find('=');
    const std::string_view key = equals == std::string_view::npos ? "" : word.substr(0, equals);
    if (key == "STOKEN" || key == "MYSTOKEN") {
      out += std::string(word.substr(0, equals + 1)) + shorten_token(word.substr(equals + 1));
    } else if ((auth_stoken && index == 2) || word.starts_with("1-created:") ||
               (word.size() > longest_plain_word && !word.starts_with("<"))) {
      out += shorten_token(word);
    } else {
      out += word;
    }
    if (end == line.size()) break;
    out += ' ';
    start = end + 1;
    ++index;
  }
  return out;
}

std::optional<HostPort> parse_host_port(std::string_view text) {
  HostPort result;
  std::string_view port;
  if (!text.empty() && text.front() == '[') {
    const auto close = text.find("]:");
    if (close == std::string_view::npos) return std::nullopt;
    result.host = std::string(text.substr(1, close - 1));
    port = text.substr(close + 2);
  } else {
    const auto colon = text.rfind(':');
    if (colon == std::string_view::npos || text.find(':') != colon) return std::nullopt;
    result.host = std::string(text.substr(0, colon));
    port = text.substr(colon + 1);
  }
  // A host name or an IPv4 literal, or an IPv6 literal in brackets (RFC
  // 3986 §3.2.2): nothing else in the host part.
  const bool bracketed = text.front() == '[';
  if (result.host.find_first_of("[] \t/@") != std::string::npos ||
      bracketed != (result.host.find(':') != std::string::npos)) {
    return std::nullopt;
  }
  unsigned value = 0;
  auto [end, error] = std::from_chars(port.data(), port.data() + port.size(), value);
  if (result.host.empty() || error != std::errc{} || end != port.data() + port.size() ||
      value == 0 || value > 65535) {
    return std::nullopt;
  }
  result.port = static_cast<std::uint16_t>(value);
  return result;
}

std::string as_crlf_message(std::string_view text) {
  std::string out;
  out.reserve(text.size() + text.size() / 32 + 2);
  for (std::size_t i = 0; i < text.size(); ++i) {
    if (text[i] == '\n' && (i == 0 || text[i - 1] != '\r')) out += '\r';
    out += text[i];
  }
  if (out.size() < 2 || out.compare(out.size() - 2, 2, "\r\n") != 0) out += "\r\n";
  return out;
}

StokenSession::StokenSession(const StokenConnectOptions& options, std::ostream& transcript)
    : options_(options), transcript_(transcript), base_(event_base_new()) {
  std::string error;
  tls_ = client::make_client_tls_context(
      {.ca_file = options_.ca_file, .use_system_store = options_.ca_file.empty()}, error);
  if (!tls_) throw std::runtime_error("TLS: " + error);
  dns::ResolverOptions resolver_options;
  resolver_options.servers = options_.dns_servers;
  resolver_options.timeout = std::min(options_.timeout, std::chrono::milliseconds(5000));
  resolver_options.tries = 2;
  resolver_ = std::make_unique<dns::AresResolver>(base_.get(), resolver_options);
}

StokenSession::~StokenSession() {
  if (client_) client_->abort();
  client_.reset();
  resolver_.reset();
}

template <typename Result, typename Start>
Result StokenSession::wait(Start start) {
  std::optional<Result> result;
  start([&result](Result value) { result = std::move(value); });
  // Every wait below has a deadline of its own (the client's timeouts, the
  // resolver's); this one only stops a loop that has nothing left to run.
  const auto limit = std::chrono::steady_clock::now() + 4 * options_.timeout;
  while (!result && std::chrono::steady_clock::now() < limit) {
    event_base_loop(base_.get(), EVLOOP_ONCE);
  }
  if (!result) throw std::runtime_error("no answer before the deadline");
  return std::move(*result);
}

void StokenSession::note(const std::string& text) {
  if (options_.show_transcript) transcript_ << "=== " << text << '\n';
}

void StokenSession::show(char from, std::string_view line) {
  if (!options_.show_transcript) return;
  // A password is never shown, not even with --show-tokens.
  const std::string shown = line.starts_with("AUTH PLAIN ") ? "AUTH PLAIN [password hidden]"
                            : options_.show_tokens          ? std::string(line)
                                                            : shorten_tokens_in(line);
  if (from == '*') {
    if (line.starts_with("TLS started")) tls_started_ = true;
    transcript_ << "=== " << shown << '\n';
  } else if (from == 'C') {
    transcript_ << (tls_started_ ? " ~> " : " -> ") << shown << '\n';
  } else {
    transcript_ << (tls_started_ ? "<~  " : "<-  ") << shown << '\n';
  }
}

std::vector<std::string> StokenSession::srv_records(std::string& error) {
  std::vector<std::string> records;
  for (const char* service : {"_submissions._tcp.", "_submission._tcp."}) {
    auto answer = wait<dns::Answer<dns::SrvRecord>>(
        [&](auto done) { resolver_->resolve_srv(service + options_.domain, std::move(done)); });
    if (answer.status == dns::Status::ok) {
      for (const auto& record : answer.records) {
        records.push_back(std::string(service) + options_.domain + " " +
                          std::to_string(record.priority) + " " + std::to_string(record.weight) +
                          " " + std::to_string(record.port) + " " + record.target);
      }
    } else if (answer.status != dns::Status::not_found) {
      error = std::string(service) + options_.domain + ": " + answer.error;
    }
  }
  return records;
}

std::vector<StokenTarget> StokenSession::find_targets(std::string& error) {
  std::vector<dns::SubmissionServer> servers;
  if (!options_.server.empty()) {
    const auto host_port = parse_host_port(options_.server);
    if (!host_port) {
      error = "--server: expected HOST:PORT, got '" + options_.server + "'";
      return {};
    }
    servers.push_back({host_port->host, host_port->port, options_.tls == "implicit"});
  } else {
    auto found = wait<dns::SubmissionServers>([&](auto done) {
      dns::find_submission_servers(*resolver_, options_.domain, std::move(done));
    });
    if (found.result != dns::SubmissionServers::ok) {
      error = found.result == dns::SubmissionServers::not_available
                  ? "no submission SRV record for " + options_.domain
                  : "SRV lookup for " + options_.domain + ": " + found.error;
      return {};
    }
    servers = std::move(found.servers);
  }
  std::vector<StokenTarget> targets;
  for (const auto& server : servers) {
    auto found = resolve(server.host, server.port, server.implicit_tls, error);
    targets.insert(targets.end(), found.begin(), found.end());
  }
  if (!targets.empty()) error.clear();
  return targets;
}

std::vector<StokenTarget> StokenSession::resolve(const std::string& host, std::uint16_t port,
                                                 bool implicit_tls, std::string& error) {
  std::vector<std::string> addresses;
  if (is_ip_literal(host)) {
    addresses.push_back(host);
  } else {
    auto answer = wait<dns::Answer<std::string>>(
        [&](auto done) { resolver_->resolve_addresses(host, std::move(done)); });
    if (answer.status != dns::Status::ok) {
      error = "cannot resolve " + host + ": " + answer.error;
      return {};
    }
    addresses = std::move(answer.records);
  }
  std::vector<StokenTarget> targets;
  for (const auto& address : addresses) {
    targets.push_back(
        {host, address, port, implicit_tls, options_.tls_name.empty() ? host : options_.tls_name});
  }
  return targets;
}

std::optional<client::Failure> StokenSession::connect(const StokenTarget& target, Protocol protocol,
                                                      TlsPolicy tls_policy) {
  close();
  tls_started_ = false;
  client::ClientSettings settings;
  settings.helo_name = "stokenctl.invalid";
  settings.tls_context = tls_.get();
  for (auto* timeout :
       {&settings.timeouts.connect, &settings.timeouts.greeting, &settings.timeouts.command,
        &settings.timeouts.data_initiation, &settings.timeouts.data_block,
        &settings.timeouts.data_done, &settings.timeouts.tls_handshake}) {
    *timeout = options_.timeout;
  }
  settings.timeouts.quit = std::min(options_.timeout, std::chrono::milliseconds(2000));
  settings.use_pipelining = false;  // one command at a time reads best in a transcript
  settings.transcript = [this](char from, std::string_view line) { show(from, line); };
  Destination destination = Destination::tcp(protocol, target.address, target.port);
  destination.tls_policy = tls_policy;
  destination.verify_certificate = tls_policy != TlsPolicy::never;
  destination.tls_server_name = target.tls_name;
  destination.implicit_tls = tls_policy != TlsPolicy::never && target.implicit_tls;
  note("Trying " + target.describe() + (destination.implicit_tls ? " (implicit TLS)" : "") + "...");
  client_ = client::SmtpClient::create(base_.get(), destination, settings);
  auto failure =
      wait<std::optional<client::Failure>>([&](auto done) { client_->connect(std::move(done)); });
  if (failure) {
    note("failed: " + failure->reason);
    client_.reset();
  }
  return failure;
}

client::CommandResult StokenSession::command(const std::string& line) {
  if (!client_) return {std::nullopt, client::Failure{"4.4.2", "not connected"}};
  return wait<client::CommandResult>(
      [&](auto done) { client_->send_command(line, std::move(done)); });
}

client::TransactionResult StokenSession::transaction(client::Envelope envelope,
                                                     const std::string& message) {
  if (!client_) {
    client::TransactionResult result;
    for (const auto& address : envelope.recipients) {
      result.recipients.push_back(
          {address, client::DeliveryStatus::temporary, 0, "4.4.2", "not connected"});
    }
    result.connection_failure = client::Failure{"4.4.2", "not connected"};
    return result;
  }
  auto shared = std::make_shared<const std::string>(message);
  return wait<client::TransactionResult>(
      [&](auto done) { client_->send_transaction(std::move(envelope), shared, std::move(done)); });
}

void StokenSession::close() {
  if (!client_) return;
  if (client_->is_idle()) {
    client_->close();  // QUIT; wait for the 221 or its short deadline
    const auto limit = std::chrono::steady_clock::now() + options_.timeout;
    while (client_->is_quitting() && std::chrono::steady_clock::now() < limit) {
      event_base_loop(base_.get(), EVLOOP_ONCE);
    }
  }
  client_->abort();
  client_.reset();
}

const client::Capabilities& StokenSession::capabilities() const {
  static const client::Capabilities none;
  return client_ ? client_->capabilities() : none;
}

bool StokenSession::connected() const { return client_ && !client_->is_closed(); }

}  // namespace stokend::admin
