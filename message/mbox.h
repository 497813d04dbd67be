// The mboxrd format (one file, several messages; RFC 4155 and the mboxrd
// quoting of "From " lines), for `stokenctl contacts export` and import.
//
// Each message starts with a "From " separator line; a body line that
// would look like one ("From ", or ">From ", ">>From "...) gets one more
// '>' on writing and loses one on reading, so any message survives the
// round trip. Messages are written with LF line endings, as mbox files
// are; CRLF in the input is written as LF.
//
// Contract: pure functions, never throw (but std::bad_alloc).
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace stokend::message {

// Whether the text starts like an mbox file ("From " at its very start).
bool looks_like_mbox(std::string_view text);

// One message in mboxrd form: "From <sender> <asctime in UTC>\n", the
// quoted message with LF line endings, and an empty line.
std::string mbox_entry(std::string_view sender, std::int64_t unix_seconds,
                       std::string_view message);

// The messages of an mbox file, unquoted, LF line endings kept as they are;
// the empty line before each separator belongs to the separator. Text before
// the first separator is ignored.
std::vector<std::string> split_mbox(std::string_view text);

}  // namespace stokend::message
