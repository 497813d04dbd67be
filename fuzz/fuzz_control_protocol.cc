// libFuzzer target for the control protocol (mta/control/control_protocol.h),
// spoken between stokenctl and the daemon over the control socket.
//
// Parses the input as a request line and as a daemon's answer. Beyond
// memory safety (the sanitizers), checks (abort on violation): a refused
// request always says why; an accepted one names at most one of an id, ALL
// or a domain, each well-formed, and formats to a line that parses back to
// it; a decoded answer encodes to a wire form that decodes back to it.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>

#include "mta/control/control_protocol.h"

namespace {

using namespace stokend::control;

void require(bool condition) {
  if (!condition) std::abort();
}

void check_request(std::string_view line) {
  std::string error;
  const auto request = parse_request(line, error);
  if (!request) {
    require(!error.empty());
    return;
  }
  const int selections =
      (request->id.empty() ? 0 : 1) + (request->all ? 1 : 0) + (request->domain.empty() ? 0 : 1);
  require(selections <= 1);
  require(request->id.empty() || is_message_id(request->id));
  require(request->domain.empty() || is_selectable_domain(request->domain));
  std::string formatted = format_request(*request);
  require(formatted.ends_with('\n'));
  formatted.pop_back();
  std::string again_error;
  const auto again = parse_request(formatted, again_error);
  require(again && *again == *request);
}

void check_answer(std::string_view wire) {
  std::string error;
  const auto answer = decode_answer(wire, error);
  if (!answer) {
    require(!error.empty());
    return;
  }
  const auto again = decode_answer(encode_answer(*answer), error);
  require(again && again->ok == answer->ok && again->body == answer->body);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view input(reinterpret_cast<const char*>(data), size);
  if (input.size() <= max_request_line) check_request(input.substr(0, input.find('\n')));
  check_answer(input);
  return 0;
}
