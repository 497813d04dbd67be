// One message's conversation with one milter, on the event loop: connect,
// negotiate (SMFIC_OPTNEG, protocol version 6), then the whole transaction
// in Postfix's order with the macros Postfix sends — CONNECT, HELO, MAIL,
// each RCPT, DATA, every header, EOH, the body in 64 KiB chunks, EOB —
// and QUIT once the milter has given its verdict.
//
// The conversation happens at the end of the data, when the whole message
// is known, so every verdict applies to the message: a milter that rejects
// at RCPT rejects the message (the client has not heard 250 yet, so
// nothing is lost), and the changes a milter asks for at EOB are gathered
// for the chain (milter_chain.h) to apply.
//
// Steps the milter asked to leave out (SMFIP_NO*) are not sent, and those
// it will not answer (SMFIP_NR_*) are not waited for. SMFIR_PROGRESS
// restarts the command deadline, but the conversation after the
// negotiation never outlasts one command_timeout per reply owed;
// SMFIR_SKIP ends the body early when negotiated.
//
// Contract: start() once; `done` runs exactly once, on the loop thread,
// never inside start(). Outcome::failed means the milter gave no verdict
// (down, connect or command timeout, a closed connection, garbage, a
// change it had not negotiated, SMFIR_SHUTDOWN); `reason` says which, for
// the one log line. Destroying the conversation cancels it without calling
// `done`. Every descriptor and event is owned here (RAII).
#pragma once

#include <chrono>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "common/event_handles.h"
#include "common/timer.h"
#include "common/unique_fd.h"
#include "mta/message_filter.h"
#include "mta/milter/milter_edits.h"
#include "mta/milter/milter_packet.h"

namespace stokend::milter {

struct MilterResult {
  enum class Outcome { accept, discard, reject, tempfail, failed };
  Outcome outcome = Outcome::failed;
  int code = 0;  // reject, tempfail
  std::string enhanced;
  std::vector<std::string> text;
  MessageEdits edits;                     // accept: the changes asked for
  std::optional<std::string> quarantine;  // accept: SMFIR_QUARANTINE's reason
  std::string reason;                     // failed: why
};

class MilterConversation {
 public:
  using Done = std::function<void(MilterResult)>;

  // request and milter must outlive the conversation.
  MilterConversation(event_base* base, const MilterConfig& milter, const FilterRequest& request,
                     const std::string& message, const std::string& sender,
                     const std::vector<std::string>& recipients);
  ~MilterConversation();
  MilterConversation(const MilterConversation&) = delete;
  MilterConversation& operator=(const MilterConversation&) = delete;

  void start(Done done);

 private:
  struct Step {
    enum class Kind { connect, helo, mail, rcpt, data, header, end_of_headers, body, end_of_body };
    Kind kind;
    std::string packets;      // macros and the command, framed
    bool reply = true;        // the milter answers it
    std::size_t body_at = 0;  // body: where its chunk starts in message_
    std::size_t body_size = 0;
  };

  static void on_read(bufferevent*, void* self);
  static void on_event(bufferevent*, short events, void* self);

  void connected();
  void negotiated(const Reply& reply);
  void build_steps();
  void send_steps();
  void handle(const Reply& reply);
  void finish(MilterResult result);
  void fail(std::string reason);
  void release_bufferevent();
  std::vector<std::pair<std::string, std::string>> macros_for(char command) const;
  std::string describe_step() const;

  event_base* base_;
  const MilterConfig& milter_;
  const FilterRequest& request_;
  const std::string& message_;
  const std::string& sender_;
  const std::vector<std::string>& recipients_;

  UniqueFd socket_;
  BuffereventPtr connection_;
  Timer deadline_;
  Timer whole_;  // the whole conversation after the negotiation
  std::chrono::milliseconds whole_limit_{0};
  Timer start_later_;  // a failure found in start(), reported from the loop
  PacketReader reader_;
  Done done_;

  bool negotiating_ = false;
  std::uint32_t actions_ = 0;  // granted
  std::uint32_t steps_ = 0;    // what the milter asked to leave out
  std::vector<Step> steps_to_send_;
  std::size_t next_step_ = 0;    // the next to send
  std::size_t waiting_for_ = 0;  // the step whose reply is awaited
  bool awaiting_ = false;
  MilterResult result_;
  std::shared_ptr<char> alive_ = std::make_shared<char>();
};

}  // namespace stokend::milter
