// The changes a milter asks for at the end of the body (SMFIR_ADDHEADER,
// INSHEADER, CHGHEADER, REPLBODY, ADDRCPT, DELRCPT, CHGFROM), gathered while
// it talks and applied to the message once it has given its verdict, the
// way Sendmail and Postfix apply them:
// - add_header appends a field at the end of the header section;
// - insert_header puts one at position `index` (0: first, past the end:
//   last);
// - change_header changes the index-th (from 1) field of that name,
//   case-insensitively, deletes it when the value is empty, and adds the
//   field when there are fewer than index of them;
// - body chunks are concatenated into the new body;
// - recipients are added (unless already there) and deleted by address,
//   case-insensitively, with or without angle brackets; the sender is
//   replaced ("<>": the null sender).
// A value's line breaks ("\n" or "\r\n") become CRLF, and a continuation
// line gets a leading tab if it has no white space (RFC 5322 §2.2.3
// folding), so a milter cannot end the header section early.
//
// Contract: apply() changes nothing and returns the reason when an edit is
// malformed (a header name that is not RFC 5322 §3.6.8 ftext, a bad
// address) or the result is over max_size; the caller treats that as a
// milter speaking garbage. Nothing here does I/O.
#pragma once

#include <cstddef>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "mta/milter/milter_packet.h"

namespace stokend::milter {

struct EditedMessage {
  std::string sender;  // mailbox, empty for <>
  std::vector<std::string> recipients;
  std::string message;  // CRLF
};

class MessageEdits {
 public:
  // One modification reply (add_header ... change_sender); others are ignored.
  void add(Reply reply);
  bool empty() const { return edits_.empty() && !body_; }
  std::size_t size() const { return edits_.size() + (body_ ? 1 : 0); }

  std::optional<std::string> apply(EditedMessage& target, std::size_t max_size) const;

 private:
  std::vector<Reply> edits_;
  std::optional<std::string> body_;  // replacement body, in order of its chunks
};

// The header fields of a message as a milter is shown them (SMFIC_HEADER):
// the name, and the value after the colon and its one space, with folded
// lines joined by "\n" as Postfix sends them; and where the body starts
// (past the empty line; the message's size when there is none).
struct HeaderSection {
  std::vector<std::pair<std::string, std::string>> fields;
  std::size_t body_at = 0;
};
HeaderSection read_header_section(const std::string& message);

// Whether text is a header field name (RFC 5322 §3.6.8: printable ASCII
// but ':', at least one character).
bool is_header_name(std::string_view text);

// "<a@b>" or "a@b" as the mailbox text; "" for "<>"; nullopt when it is
// neither a mailbox nor the null path.
std::optional<std::string> milter_address(std::string_view text, bool allow_null);

}  // namespace stokend::milter
