// libFuzzer target for COI contact storage messages
// (tokens/coi_contact_message.h), which stokend reads from users' mailboxes
// and from files an administrator imports, and for the mbox splitting of
// `stokenctl contacts import` (message/mbox.h).
//
// Beyond memory safety (the sanitizers), checks (abort on violation): a
// parse either yields a contact or a short error, never both; a contact's
// hashes are 64 lowercase hex digits without duplicates, its tokens are
// non-empty words without whitespace and without duplicates, and each
// address it found hashes to one of its COI-From-Hash values; replacing the
// token fields of the input with the parsed ones gives a message that
// parses to the same contact; a message rendered from the parsed tokens
// parses back to them; an mbox written from split messages splits into the
// same messages (each ending with a line end).
#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>
#include <vector>

#include "message/mbox.h"
#include "tokens/coi_contact_message.h"

namespace {

using namespace stokend;
using namespace stokend::tokens;

void require(bool condition) {
  if (!condition) std::abort();
}

bool is_word(const std::string& text) {
  return !text.empty() && std::none_of(text.begin(), text.end(), [](char c) {
    return c == ' ' || c == '\t' || c == '\r' || c == '\n';
  });
}

template <typename Items>
bool unique(Items items) {
  std::sort(items.begin(), items.end());
  return std::adjacent_find(items.begin(), items.end()) == items.end();
}

void check_contact(const ContactMessage& contact) {
  require(!contact.from_hashes.empty());
  for (const std::string& hash : contact.from_hashes) {
    require(hash.size() == 64 && std::all_of(hash.begin(), hash.end(), [](char c) {
              return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f');
            }));
  }
  require(unique(contact.from_hashes));
  for (const auto* tokens : {&contact.tokens_in, &contact.tokens_out}) {
    require(unique(*tokens));
    for (const std::string& token : *tokens) require(is_word(token));
  }
  for (const std::string& address : contact.addresses) {
    require(std::find(contact.from_hashes.begin(), contact.from_hashes.end(),
                      coi_from_hash_hex(address)) != contact.from_hashes.end());
  }
}

void check_message(std::string_view input) {
  const ContactParseResult parsed = parse_contact_message(input);
  require(parsed.contact.has_value() == parsed.error.empty());
  require(parsed.error.size() < 300);
  if (!parsed.contact) return;
  const ContactMessage& contact = *parsed.contact;
  check_contact(contact);

  const std::string replaced =
      replace_contact_fields(input, contact.from_hashes, contact.tokens_in, contact.tokens_out);
  const ContactParseResult again = parse_contact_message(replaced);
  require(again.contact.has_value());
  require(again.contact->from_hashes == contact.from_hashes);
  require(again.contact->tokens_in == contact.tokens_in);
  require(again.contact->tokens_out == contact.tokens_out);
  require(again.contact->user == contact.user);
  require(again.contact->blocked == contact.blocked);

  const std::string rendered = render_contact_message(
      ContactContent{"user@example.test", contact.addresses, contact.from_hashes, contact.tokens_in,
                     contact.tokens_out},
      1795000000, "mx.example.test");
  const ContactParseResult from_render = parse_contact_message(rendered);
  require(from_render.contact.has_value());
  require(from_render.contact->tokens_in == contact.tokens_in);
  require(from_render.contact->tokens_out == contact.tokens_out);
  require(from_render.contact->user == "user@example.test");
  for (const std::string& hash : contact.from_hashes) {
    const auto& hashes = from_render.contact->from_hashes;
    require(std::find(hashes.begin(), hashes.end(), hash) != hashes.end());
  }
}

void check_mbox(std::string_view input) {
  const std::vector<std::string> messages = stokend::message::split_mbox(input);
  std::string written;
  std::vector<std::string> expected;
  for (const std::string& message : messages) {
    // mbox carries LF line endings: a CR before LF does not survive.
    if (message.find('\r') != std::string::npos) return;
    written += stokend::message::mbox_entry("someone@example.test", 0, message);
    // Every line comes back LF-terminated, the last one too.
    expected.push_back(message.empty() || message.back() != '\n' ? message + "\n" : message);
  }
  require(stokend::message::split_mbox(written) == expected);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view input(reinterpret_cast<const char*>(data), size);
  check_message(input);
  check_mbox(input);
  return 0;
}
