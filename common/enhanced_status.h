// Enhanced mail system status codes (RFC 3463) at the front of a reply's
// text, as both directions meet them: the client reading a server's replies
// (RFC 2034), the Token Server passing a mailstore's reply on.
//
// Contract: pure function, no I/O.
#pragma once

#include <string>

namespace stokend {

// Splits "2.1.5 text" into the enhanced code and the rest when the code is
// well-formed (RFC 3463 §2: class 2, 4 or 5; subject and detail of one to
// three digits) and its class is the first digit of reply_code. Returns the
// code and removes it (and the space after it) from text; otherwise returns
// "" and leaves text as it was.
std::string take_enhanced_code(int reply_code, std::string& text);

}  // namespace stokend
