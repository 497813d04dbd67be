// stokenctl reload; see reload_admin.h.
#include "admin/reload_admin.h"

#include <string>

#include "mta/control/control_client.h"
#include "mta/control/control_protocol.h"

namespace stokend::admin {

int run_reload_command(const Config& config, std::ostream& out, std::ostream& err) {
  std::string error;
  const auto answer = control::ask_daemon(config.control_socket,
                                          control::Request{control::Command::reload, {}}, error);
  if (!answer) {
    err << "stokenctl: reload not done: " << error << '\n';
    return 1;
  }
  if (!answer->ok) {
    std::string reason = answer->reason;
    if (reason.starts_with("refused: ")) reason.erase(0, std::string("refused: ").size());
    err << "stokenctl: reload refused: " << reason << '\n';
    return 1;
  }
  out << answer->body << std::flush;
  return 0;
}

}  // namespace stokend::admin
