// The daemon's log file, which logrotate may move away: SIGUSR1 makes the
// daemon reopen it by name (Postfix's postlog and most daemons do the same),
// so lines go to the new file from then on.
//
// Contract: open_log_file() makes the sink the "stokend" logger writes to
// when log_file is set; reopen_log_file() closes and reopens it by path, in
// append mode, under the sink's own lock, so a line from another thread is
// written whole to the old or the new file, never lost between them. It
// returns the error text when the file cannot be reopened (the sink then
// keeps writing to the old one); with no log file it does nothing. Each open
// leaves the file at mode 0640: never readable by everyone.
#pragma once

#include <spdlog/sinks/sink.h>

#include <filesystem>
#include <memory>
#include <optional>
#include <string>

namespace stokend::wiring {

std::shared_ptr<spdlog::sinks::sink> open_log_file(const std::filesystem::path& path);

std::optional<std::string> reopen_log_file();

}  // namespace stokend::wiring
