// Text forms of the resolver's status values, for logs and error messages.
#include "dns/resolver.h"

namespace stokend::dns {

std::string_view to_string(Status status) {
  switch (status) {
    case Status::ok:
      return "ok";
    case Status::no_data:
      return "no data";
    case Status::not_found:
      return "not found";
    case Status::temporary_failure:
      return "temporary failure";
  }
  return "unknown";
}

}  // namespace stokend::dns
