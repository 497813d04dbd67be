// How a log line looks where it is written, in the shape syslog gives
// Postfix's lines so that pflogsumm, fail2ban and grep habits work on
// stokend's own log (README "Logs"):
//
//   file or terminal: 2026-12-07T13:01:02.345+00:00 mx.example stokend/smtpd[812]: warning: ...
//   systemd journal:  <4>stokend/smtpd[812]: warning: ...
//
// The time is RFC 3339 with milliseconds and the zone, as rsyslog's
// high-precision file format writes it (pflogsumm and fail2ban both read it);
// the program name is the logger's (common/service_log.h): "stokend" or
// "stokend/<service>". Under the journal (JOURNAL_STREAM set: standard error
// is the journal's) the journal adds the time and host itself, and the
// leading <N> is the line's syslog severity (sd-daemon(3)).
//
// Contract: level_prefix() is what follows "]: ", Postfix's way of marking
// severity: nothing for info, "warning: ", "error: ", "fatal: " (critical:
// stokend stops), "debug: " for debug and trace.
#pragma once

#include <spdlog/formatter.h>
#include <spdlog/spdlog.h>

#include <memory>
#include <string>
#include <string_view>

namespace stokend::wiring {

std::string_view level_prefix(spdlog::level::level_enum level);

// syslog(3) severity of a level (RFC 5424 §6.2.1).
int syslog_severity(spdlog::level::level_enum level);

// The formatter of file and terminal lines, with `hostname` after the time.
std::unique_ptr<spdlog::formatter> file_formatter(const std::string& hostname);

// The formatter of lines to the journal's standard error stream.
std::unique_ptr<spdlog::formatter> journal_formatter();

// Whether standard error is the systemd journal (systemd.exec(5),
// JOURNAL_STREAM: its device and inode match those of descriptor 2).
bool stderr_is_journal();

}  // namespace stokend::wiring
