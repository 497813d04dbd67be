// The milters a message passes through, in the configured order: the
// MessageFilter (mta/message_filter.h) the sessions use.
//
// Each milter sees the message as the milters before it left it. A
// milter's verdict:
// - accept or continue at the end of the body: its changes are applied
//   (milter_edits.h) and the next milter runs; SMFIR_QUARANTINE marks the
//   message to be queued held;
// - discard ends the chain: the client hears 250 and nothing is kept (one
//   log line names the milter);
// - reject, tempfail and a custom reply (SMFIR_REPLYCODE) end the chain
//   with that reply;
// - no verdict (down, timeout, garbage, a malformed change) follows the
//   milter's default_action, with one warning line naming the milter and
//   the reason: accept goes on to the next milter with the message as it
//   was, tempfail answers 451 4.7.1, reject 550 5.7.1.
// A message whose every recipient a milter deleted is discarded.
//
// Contract: filter() answers once, on the loop thread, never inside the
// call. Destroying the chain cancels what is running; no callback follows.
#pragma once

#include <event2/event.h>

#include <cstddef>
#include <map>
#include <memory>

#include "mta/message_filter.h"

namespace stokend::milter {

class MilterChain : public MessageFilter {
 public:
  explicit MilterChain(event_base* base);
  ~MilterChain() override;
  MilterChain(const MilterChain&) = delete;
  MilterChain& operator=(const MilterChain&) = delete;

  void filter(FilterRequest request, Done done) override;

  std::size_t running() const { return runs_.size(); }

 private:
  class Run;
  void finished(Run* run);

  event_base* base_;
  std::map<Run*, std::unique_ptr<Run>> runs_;
};

}  // namespace stokend::milter
