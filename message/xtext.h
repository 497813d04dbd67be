// The "xtext" encodings of the DSN extension: RFC 3461 §4 xtext (ENVID and
// ORCPT values) and RFC 6533 §3 utf-8-addr-xtext / utf-8-addr-unitext (ORCPT
// with the "utf-8" address type).
//
//   xtext           = *( xchar / hexchar )
//   xchar           = "!" .. "~" except "+" and "="
//   hexchar         = "+" two upper-case hex digits
//   utf-8-addr-xtext = 1*( QCHAR / "\x{" 1-6 hex digits "}" )
//   QCHAR           = "!" .. "~" except "+", "=" and "\" (utf-8-addr-unitext
//                     also allows UTF-8 beyond ASCII)
//
// Contract: pure functions, never throw. Decoders return nothing for input
// that breaks the grammar, and for a decoded value that RFC 3461 forbids
// (anything but printable US-ASCII and space after xtext decoding, §4.2 and
// §4.4; for utf-8 only well-formed UTF-8 without control characters).
// Encoders always produce text their decoder accepts back.
#pragma once

#include <optional>
#include <string>
#include <string_view>

namespace stokend::message {

std::string encode_xtext(std::string_view text);
std::optional<std::string> decode_xtext(std::string_view xtext);

// Non-ASCII code points and the ASCII characters QCHAR excludes become
// "\x{HEX}", so the result is plain ASCII (utf-8-addr-xtext).
std::string encode_utf8_address_xtext(std::string_view utf8);
// Accepts utf-8-addr-xtext, and with allow_utf8 also the raw UTF-8 of
// utf-8-addr-unitext (an SMTPUTF8 transaction).
std::optional<std::string> decode_utf8_address_xtext(std::string_view text, bool allow_utf8);

}  // namespace stokend::message
