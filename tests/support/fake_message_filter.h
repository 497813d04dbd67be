// A MessageFilter (mta/message_filter.h) for session tests: records each
// request and answers, from the loop as the real milter chain does, with the
// verdict the test set (by default: accept the message unchanged).
#pragma once

#include <event2/event.h>

#include <functional>
#include <vector>

#include "common/deferred_calls.h"
#include "mta/message_filter.h"

namespace stokend::testing {

class FakeMessageFilter final : public MessageFilter {
 public:
  explicit FakeMessageFilter(event_base* base) : deferred_(base) {}

  void filter(FilterRequest request, Done done) override {
    FilterVerdict verdict;
    verdict.sender = request.sender;
    verdict.recipients = request.recipients;
    verdict.message = request.message;
    if (decide) decide(verdict);
    requests.push_back(std::move(request));
    deferred_.post([done = std::move(done), verdict] { done(verdict); });
  }

  // Changes the verdict, which starts as "accept, unchanged".
  std::function<void(FilterVerdict&)> decide;
  std::vector<FilterRequest> requests;

 private:
  DeferredCalls deferred_;
};

}  // namespace stokend::testing
