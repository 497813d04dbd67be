// RAII owners for the c-ares objects the resolver uses, so that no code in
// dns/ frees one by hand. Each is a std::unique_ptr whose deleter is the
// library's own free function. (The libevent owners are in
// common/event_handles.h.)
#pragma once

#include <ares.h>
#include <netdb.h>

#include <memory>
#include <type_traits>

#include "common/call_free.h"

namespace stokend::dns {

// ares_channel is itself a pointer type; the owner holds what it points to.
// ares_destroy() ends every pending query with ARES_EDESTRUCTION.
using AresChannelPtr = std::unique_ptr<std::remove_pointer_t<ares_channel>, CallFree<ares_destroy>>;

// Results of the c-ares reply parsers.
template <typename T>
using AresDataPtr = std::unique_ptr<T, CallFree<ares_free_data>>;
using HostentPtr = std::unique_ptr<hostent, CallFree<ares_free_hostent>>;

}  // namespace stokend::dns
