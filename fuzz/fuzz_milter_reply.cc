// libFuzzer target for the milter reply reader (mta/milter/milter_packet.h)
// and the application of a milter's changes (mta/milter/milter_edits.h):
// every octet a milter sends goes through them.
//
// The input is a stream of framed replies. Beyond memory safety (the
// sanitizers), checks (abort on violation): the reader never hands out a
// packet whose length breaks its limit, and a failed stream stays failed;
// a refused reply says why; a custom reply is 4xx or 5xx, and its lines
// hold no CR, LF or other control character (they go to the SMTP client
// as they are); applying the changes either refuses with a reason and
// leaves the message alone, or gives a message within the size limit whose
// header section still ends before the original body (a change cannot
// end it early).
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>

#include "mta/milter/milter_edits.h"
#include "mta/milter/milter_packet.h"

namespace {

using namespace stokend::milter;

void require(bool condition) {
  if (!condition) std::abort();
}

constexpr std::size_t max_packet = 4096;
constexpr std::size_t max_size = 16384;
const std::string original = "Received: by x\r\nSubject: s\r\n\r\nBODY-MARK\r\n";

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  PacketReader reader(max_packet);
  const std::string_view input(reinterpret_cast<const char*>(data), size);
  // Fed in two pieces, so that reassembly is exercised too.
  reader.append(input.substr(0, size / 2));
  MessageEdits edits;
  bool replaced_body = false;
  for (int round = 0; round < 2; ++round) {
    while (auto packet = reader.next()) {
      require(packet->data.size() + 1 <= max_packet);
      const ReplyParse parse = parse_reply(*packet);
      if (!parse.reply) {
        require(!parse.error.empty());
        continue;
      }
      const Reply& reply = *parse.reply;
      if (reply.kind == Reply::Kind::reply_code) {
        require(reply.code >= 400 && reply.code < 600);
        for (const auto& line : reply.text) {
          for (const char c : line) require(static_cast<unsigned char>(c) >= ' ' && c != 127);
        }
      }
      if (reply.kind == Reply::Kind::replace_body) replaced_body = true;
      edits.add(reply);
    }
    if (reader.failed()) require(!reader.next());
    if (round == 0) reader.append(input.substr(size / 2));
  }
  EditedMessage message{"a@example.org", {"b@example.test"}, original};
  if (const auto error = edits.apply(message, max_size)) {
    require(!error->empty());
    require(message.message == original);
    return 0;
  }
  require(message.message.size() <= max_size);
  if (!replaced_body) {
    // The body is still where the header section ends.
    const auto end = message.message.find("\r\n\r\n");
    require(end != std::string::npos);
    require(message.message.substr(end + 4) == "BODY-MARK\r\n");
  }
  return 0;
}
