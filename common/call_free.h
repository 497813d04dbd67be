// CallFree: a std::unique_ptr deleter that calls a C library's own free
// function, e.g. std::unique_ptr<event, CallFree<event_free>>.
//
// Why here: every part of stokend owns C library objects (libevent, c-ares,
// OpenSSL, libc's DIR), and the folders that must not depend on mta/ (dns/,
// queue/, tokens/) need the same deleter. common/ is a leaf: it includes
// nothing of the project, so anything may include it without turning a
// dependency around. It is header-only and needs no library of its own.
//
// Contract: the deleter does nothing for a null pointer, so a unique_ptr
// holding nothing never reaches the library; the free function's return
// value, if any, is ignored (a destructor cannot report it).
#pragma once

namespace stokend {

template <auto FreeFunction>
struct CallFree {
  template <typename T>
  void operator()(T* pointer) const {
    if (pointer) FreeFunction(pointer);
  }
};

}  // namespace stokend
