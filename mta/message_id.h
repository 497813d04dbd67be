// Identifiers for accepted messages ("queued as ID") and sessions, unique
// across restarts of one host: time in microseconds plus random bits, in a
// compact uppercase alphabet that is safe in file names and logs.
#pragma once

#include <string>

namespace stokend {

std::string new_message_id();  // e.g. "4F2K8Q1ZT7M3XW0P"
std::string new_session_id();  // shorter, for log correlation

}  // namespace stokend
