// The log's services: the lines operators' tools read (pflogsumm, fail2ban's
// postfix filter, grep habits) carry a Postfix-style program name,
// "stokend/smtpd", "stokend/qmgr", ..., as Postfix's "postfix/smtpd" does;
// every other line carries plain "stokend".
//
// Contract: service_log(service) is the logger of that service. Until the
// daemon installs its loggers (install_service_loggers(), once, before any
// other thread starts) it is the default logger, so code under test logs as
// before. Each service logger shares the default logger's sinks, formatter
// and level: one file, one syslog connection, one rotation.
#pragma once

#include <spdlog/spdlog.h>

#include <cstdint>
#include <string_view>

namespace stokend {

enum class Service : std::uint8_t {
  smtpd,    // connections, client=, rejects, SASL failures
  cleanup,  // message-id= of an accepted message
  qmgr,     // from=, size=, nrcpt= (queue active); removed; expired
  smtp,     // to= lines of SMTP deliveries (MX, fixed next hop, fast lane)
  lmtp,     // to= lines of LMTP deliveries
  local,    // to= lines of deliveries into the built-in Maildir
  bounce,   // sender non-delivery / delivery status notifications
};
inline constexpr std::size_t service_count = 7;

// "smtpd", "qmgr", ...: the part after "stokend/" in a line's program name.
std::string_view service_name(Service service);

spdlog::logger& service_log(Service service);

// Makes one logger per service named "stokend/<service>", cloned from
// `base` (its sinks, level, flush level and formatter).
void install_service_loggers(spdlog::logger& base);

}  // namespace stokend
