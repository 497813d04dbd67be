// See session_role.h: the piece for each listener role, and the relay rule
// the roles share.
#include "mta/server/session_role.h"

#include <spdlog/spdlog.h>

#include "mta/config/config.h"
#include "mta/mta_metrics.h"
#include "mta/server/mx_role.h"
#include "mta/server/submission_role.h"

namespace stokend::server {

std::unique_ptr<SessionRole> make_session_role(SessionCore& core, const ListenerConfig& listener) {
  if (listener.role == Role::submission) return std::make_unique<SubmissionRole>(core);
  return std::make_unique<MxRole>(core);
}

bool SessionRole::refuse_relay(SessionCore& core, const message::Path& path,
                               const std::string& shown, bool local) {
  // Never an open relay (RFC 5321 §3.6, RFC 2505 §2.6): without AUTH, only
  // our own domains, and none of the old tricks that make a local address
  // relay onwards (source route, %-hack, bang path, quoted '@').
  if (auto trick = message::relay_trick(path); !trick.empty()) {
    spdlog::info("session {}: relay attempt refused ({}) for {}", core.id(), trick, shown);
    mta_metrics::count_rejected(mta_metrics::Rejection::relay_denied);
    core.reply_error(550, "5.7.1", shown + ": Relay access denied (" + trick + ")");
    return true;
  }
  if (!local) {
    spdlog::info("session {}: relay attempt refused for {}", core.id(), shown);
    mta_metrics::count_rejected(mta_metrics::Rejection::relay_denied);
    core.reply_error(550, "5.7.1", shown + ": Relay access denied");
    return true;
  }
  return false;
}

}  // namespace stokend::server
