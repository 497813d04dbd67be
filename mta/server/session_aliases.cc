// RCPT for an address the aliases map expands (mta/addresses/alias_map.h):
// every final address of the expansion becomes a recipient of the
// transaction, local ones delivered here and the others relayed through the
// queue, with the envelope sender unchanged (README: Aliases). An expansion
// that cannot finish (a loop, a chain too deep, too many addresses) accepts
// nothing: 4xx, so that the client keeps the message while the operator
// mends the map. The replies are listed in REPLIES.md.
#include <spdlog/spdlog.h>

#include <algorithm>

#include "common/ascii.h"
#include "message/address.h"
#include "mta/mta_metrics.h"
#include "mta/server/session.h"

namespace stokend::server {
void Session::aliased_recipient(const std::string& shown, const addresses::Expansion& expansion,
                                const queue::RecipientDsn& dsn) {
  using Status = addresses::Expansion::Status;
  switch (expansion.status) {
    case Status::not_aliased:
    case Status::expanded:
      break;
    case Status::loop:
    case Status::too_deep: {
      // The chain names the map's addresses: in the log for the operator,
      // never in the reply to a client who may be anyone.
      const bool loop = expansion.status == Status::loop;
      spdlog::warn("session {}: {} deferred: {}: {}", session_id_, shown,
                   loop ? "alias loop" : "alias chain deeper than the limit",
                   addresses::describe_chain(expansion.chain));
      mta_metrics::count_rejected(mta_metrics::Rejection::local_error);
      return reply(
          451, "4.3.0",
          shown + (loop ? ": Temporary failure: alias loop, try again later"
                        : ": Temporary failure: alias expansion too deep, try again later"));
    }
    case Status::too_many:
      // RFC 5321 §4.5.3.1.10: 452, the client keeps the recipient.
      spdlog::warn("session {}: {} deferred: alias expands to more than {} addresses", session_id_,
                   shown, addresses::default_expansion_limits().max_recipients);
      mta_metrics::count_rejected(mta_metrics::Rejection::too_many_recipients);
      return reply(452, "4.5.3",
                   shown + ": Too many recipients: alias expands to more than " +
                       std::to_string(addresses::default_expansion_limits().max_recipients));
  }
  // RFC 3461 §4.2: without an ORCPT of the client's, the address it gave
  // goes with each expanded recipient, so that a report names it.
  queue::RecipientDsn expanded_dsn = dsn;
  const std::string given = shown.substr(1, shown.size() - 2);
  if (expanded_dsn.original_type.empty() && is_ascii(given)) {
    expanded_dsn.original_type = "rfc822";
    expanded_dsn.original_address = given;
  }
  // One RCPT command, however many addresses (recipient_limit_reached()).
  const std::size_t commands = state_.transaction.accepted_rcpt_commands + 1;
  for (const std::string& address : expansion.recipients) {
    const auto at = address.rfind('@');
    const bool local = at != std::string::npos &&
                       context_.config().is_local_domain(std::string_view(address).substr(at + 1));
    add_recipient(address, local, expanded_dsn);
  }
  state_.transaction.accepted_rcpt_commands = commands;
  spdlog::info("session {}: {} expanded by the aliases to {} address(es)", session_id_, shown,
               expansion.recipients.size());
  reply(250, "2.1.5", "Ok");
}

}  // namespace stokend::server
