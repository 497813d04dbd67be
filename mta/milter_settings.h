// One milter's settings (the milters section of stokend.yaml), here below
// the configuration so that the mail filter interface (message_filter.h)
// and the milter client (mta/milter/) can name them.
//
// Contract: a plain value; load_config() fills it in and checks it.
#pragma once

#include <chrono>
#include <cstdint>
#include <filesystem>
#include <string>

#include "mta/defaults.h"

namespace stokend {

// A milter (Sendmail's mail filter protocol, mta/milter/): where it listens,
// which listener roles' mail it sees, its deadlines and what happens to
// the message when it cannot give a verdict (down, too slow, garbage).
enum class MilterDefaultAction { tempfail, accept, reject };

struct MilterConfig {
  std::string name;     // for log lines; unique
  std::string address;  // "unix:PATH" or "inet:HOST:PORT", as written
  bool unix_socket = false;
  std::filesystem::path path;  // unix
  std::string host;            // inet: an IP literal (IPv6 in brackets in the text)
  std::uint16_t port = 0;      // inet
  bool mx = true;              // roles: [mx, submission]
  bool submission = true;
  std::chrono::milliseconds connect_timeout = defaults::milter_connect_timeout;
  std::chrono::milliseconds command_timeout = defaults::milter_command_timeout;
  MilterDefaultAction default_action = MilterDefaultAction::tempfail;

  bool operator==(const MilterConfig&) const = default;
};

}  // namespace stokend
