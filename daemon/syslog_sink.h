// Log lines to the system logger (log_syslog), facility mail, each with its
// own program name: "stokend/smtpd[PID]", "stokend/qmgr[PID]", ... as
// Postfix's daemons log, so that pflogsumm --syslog-name=stokend and
// fail2ban's postfix filter read /var/log/mail.log or the journal as they
// read Postfix's. syslog(3) cannot do that (one ident per process, set by
// openlog()), so the sink writes the datagrams syslog(3) would: RFC 3164
// "<PRI>Mmm dd hh:mm:ss TAG[PID]: message" to the local socket (/dev/log,
// where journald and rsyslog listen).
//
// Contract: a line that cannot be sent (no logger listening, one that has
// not read for syslog_send_timeout) is dropped, never retried; after such a
// timeout, lines are sent only if the logger takes them at once, until one
// gets through, so a stuck logger stalls the daemon for one timeout, not one
// per line. The socket is opened
// once and sent on by path each time, so a restarted syslog daemon gets the
// next line. Lines longer than syslog_max_line are cut.
#pragma once

#include <spdlog/sinks/sink.h>

#include <chrono>
#include <cstddef>
#include <filesystem>
#include <memory>
#include <string>

namespace stokend::wiring {

std::shared_ptr<spdlog::sinks::sink> make_syslog_sink(const std::filesystem::path& socket,
                                                      std::chrono::milliseconds send_timeout,
                                                      std::size_t max_line, std::string& error);

}  // namespace stokend::wiring
