// See mx_role.h. The replies are listed in REPLIES.md.
#include "mta/server/mx_role.h"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <cctype>

#include "common/ascii.h"
#include "message/headers.h"
#include "mta/server/server_context.h"
#include "tokens/harvest.h"
#include "tokens/token_format.h"

namespace stokend::server {

void MxRole::command_lhlo(const Command&) {
  // The Token Server is on submission listeners only (rfcdraft/ §7).
  core_.reply_error(502, "5.5.1", "LHLO is not available on this port");
}

void MxRole::command_auth(const Command&) {
  core_.reply_error(503, "5.5.1", "Authentication not available on this port");
}

void MxRole::auth_response(const std::string& line) {
  // No challenge is ever sent here; answered as a response without an
  // exchange in progress would be on any port.
  if (line == "*") return core_.reply_error(501, "5.0.0", "Authentication cancelled");
  core_.reply_error(503, "5.5.1", "No authentication in progress");
}

void MxRole::command_genstoken(const Command& command) {
  core_.reply_error(502, "5.5.1", command.verb_text + " is not available on this port");
}

void MxRole::command_revstoken(const Command& command) {
  core_.reply_error(502, "5.5.1", command.verb_text + " is not available on this port");
}

std::optional<bool> MxRole::admit_mail(const EsmtpParameter* sync) {
  // SYNC asks for a token transaction, which only the Token Server has.
  if (sync) {
    core_.reply_error(555, "5.5.4", "Unsupported parameter SYNC");
    return std::nullopt;
  }
  return false;
}

void MxRole::inbound_message(std::string& body) {
  ServerContext& context = core_.context();
  const Transaction& transaction = core_.state().transaction;
  if (!context.token_store || transaction.sender.is_null) return;
  // Most mail carries no token: look for the field name in the header
  // section before parsing it.
  const std::string_view header = message::header_section(body);
  constexpr std::string_view needle = "submission-token";
  auto found = std::search(header.begin(), header.end(), needle.begin(), needle.end(),
                           [](char a, char b) { return ascii_lower(a) == b; });
  if (found == header.end()) return;

  std::vector<std::string> recipients;
  for (const auto& recipient : transaction.recipients) recipients.push_back(recipient.address);
  const std::string sender = transaction.sender.mailbox.normalized();
  const std::int64_t now = tokens::TokenAuthority::system_clock();
  auto harvest =
      tokens::harvest_submission_tokens(message::parse_headers(header), sender, recipients, now);
  if (harvest.fields == 0) return;
  for (const auto& reason : harvest.ignored) {
    spdlog::debug("session {}: Submission-Token from {} ignored: {}", core_.id(), sender, reason);
  }
  if (!harvest.accepted.empty()) {
    spdlog::info("session {}: {} Submission-Token(s) from {} for the wallet", core_.id(),
                 harvest.accepted.size(), sender);
    tokens::TokenStore* store = context.token_store;
    // The store fsyncs: a worker thread, and nobody waits for it.
    context.workers.submit([store, accepted = std::move(harvest.accepted), now]() {
      try {
        tokens::store_harvested(*store, accepted, now);
      } catch (const std::exception& error) {
        spdlog::error("harvested tokens not stored: {}", error.what());
      }
      return WorkRunner::Completion{};
    });
  }
  if (context.config().tokens.remove_submission_token_headers) {
    body = message::remove_header_fields(body, tokens::submission_token_field);
  }
}

}  // namespace stokend::server
