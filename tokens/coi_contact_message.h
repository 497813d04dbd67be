// COI contact storage messages (COI client spec, "Contact Storage
// Messages"): reading the fields the token bridge needs, writing such
// messages from the token store's data, and replacing the token fields of an
// existing message.
//
// The fields (one message per contact, kept in the user's COI/Contacts
// folder):
//   Chat-Content: contact
//   COI-From-Hash: <hex SHA3-256 of norm(address)>   one per contact address
//                  (read in base64 too, as Dovecot's COI plugin writes it)
//   COI-TokenIn:  <token>   a token this server issued to the contact
//   COI-TokenOut: <token>   a token the contact's server issued to our user
//   From, To: our user's address (To: the user's address for this contact)
// The body is an h-card (p-name, u-email) in text/html, often encrypted; the
// contact's addresses are read from it only where their hash is listed in
// COI-From-Hash, so a body cannot name an address the fields do not.
//
// Contract: pure functions, no I/O, never throw (but std::bad_alloc).
// parse_contact_message() accepts CRLF or LF line endings and any octets; it
// refuses only a message that is not a contact storage message at all, and
// lists every field it skipped in `problems`. Rendered messages use CRLF,
// lines of at most 998 octets, and parse back to the same hashes and tokens.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace stokend::tokens {

inline constexpr std::string_view chat_content_field = "Chat-Content";
inline constexpr std::string_view coi_from_hash_field = "COI-From-Hash";
inline constexpr std::string_view coi_token_in_field = "COI-TokenIn";
inline constexpr std::string_view coi_token_out_field = "COI-TokenOut";

// COI-From-Hash of an address: SHA3-256 of norm(address), 64 lowercase hex
// digits.
std::string coi_from_hash_hex(std::string_view address);

struct ContactMessage {
  std::vector<std::string> from_hashes;  // lowercase hex, message order, no duplicates
  std::vector<std::string> tokens_in;    // COI-TokenIn values, message order, no duplicates
  std::vector<std::string> tokens_out;   // COI-TokenOut values, likewise
  // Our user: the address in To, else in From (normalised); nullopt when
  // neither holds an address.
  std::optional<std::string> user;
  // The contact's addresses found in the body whose hash is a from_hash
  // (normalised, no duplicates). Empty when the body is encrypted.
  std::vector<std::string> addresses;
  bool blocked = false;               // COI-Blocked present
  std::vector<std::string> problems;  // fields skipped, and why
};

struct ContactParseResult {
  std::optional<ContactMessage> contact;
  std::string error;  // why it is not a contact storage message
};

ContactParseResult parse_contact_message(std::string_view message);

// What a rendered message holds.
struct ContactContent {
  std::string user;                    // our user: From and To
  std::vector<std::string> addresses;  // the contact's addresses, at least one
  // COI-From-Hash values of addresses we do not know (kept from a message
  // that listed them); written after those of `addresses`.
  std::vector<std::string> other_from_hashes;
  std::vector<std::string> tokens_in;
  std::vector<std::string> tokens_out;
};

// A complete contact storage message for `content`. `now` gives the Date;
// the Message-ID is built from the contact, `now` and the tokens, under
// `hostname`.
std::string render_contact_message(const ContactContent& content, std::int64_t now,
                                   std::string_view hostname);

// The message with its COI-From-Hash, COI-TokenIn and COI-TokenOut fields
// replaced by these (written at the end of the header section, in the
// message's own line ending); every other octet is kept. This is how a
// contact a client wrote is updated without touching the client's data.
std::string replace_contact_fields(std::string_view message,
                                   const std::vector<std::string>& from_hashes,
                                   const std::vector<std::string>& tokens_in,
                                   const std::vector<std::string>& tokens_out);

// Whether the message is exactly what render_contact_message() writes for
// its own addresses, with no field added by anyone else: a copy nobody but
// stokend has touched, which may be deleted once its contact has no tokens
// left (a contact a client wrote or changed is never deleted).
bool is_plain_rendering(std::string_view message);

}  // namespace stokend::tokens
