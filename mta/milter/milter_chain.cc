// The milters of one message, in order; see milter_chain.h.
#include "mta/milter/milter_chain.h"

#include <spdlog/spdlog.h>

#include "common/deferred_calls.h"
#include "mta/milter/milter_conversation.h"

namespace stokend::milter {
namespace {

const char* action_name(MilterDefaultAction action) {
  switch (action) {
    case MilterDefaultAction::accept:
      return "accept";
    case MilterDefaultAction::reject:
      return "reject";
    case MilterDefaultAction::tempfail:
      return "tempfail";
  }
  return "tempfail";
}

std::string joined(const std::vector<std::string>& lines) {
  std::string text;
  for (const auto& line : lines) text += (text.empty() ? "" : " ") + line;
  return text;
}

}  // namespace

class MilterChain::Run {
 public:
  Run(MilterChain& chain, FilterRequest request, Done done)
      : chain_(chain), request_(std::move(request)), done_(std::move(done)), later_(chain.base_) {
    working_.sender = request_.sender;
    working_.recipients = request_.recipients;
    working_.message = std::move(request_.message);
  }

  void start() {
    if (request_.milters.empty()) {
      // Nothing to ask; still answered from the loop.
      later_.post([this] { accept(); });
      return;
    }
    next();
  }

 private:
  const MilterConfig& milter() const { return request_.milters[index_]; }

  void next() {
    if (index_ == request_.milters.size()) return accept();
    conversation_ = std::make_unique<MilterConversation>(
        chain_.base_, milter(), request_, working_.message, working_.sender, working_.recipients);
    conversation_->start([this](MilterResult result) { conversation_done(std::move(result)); });
  }

  void conversation_done(MilterResult result) {
    using Outcome = MilterResult::Outcome;
    switch (result.outcome) {
      case Outcome::failed:
        return failed(result.reason);
      case Outcome::accept: {
        if (auto error = result.edits.apply(working_, request_.max_message_size)) {
          return failed("garbage: " + *error);
        }
        if (!result.edits.empty()) {
          spdlog::info("message {}: milter {}: {} changes applied", request_.queue_id,
                       milter().name, result.edits.size());
        }
        if (result.quarantine) {
          quarantine_ = "milter " + milter().name + ": " + *result.quarantine;
          spdlog::info("message {}: milter {} quarantines it: {}", request_.queue_id, milter().name,
                       *result.quarantine);
        }
        ++index_;
        return next();
      }
      case Outcome::discard: {
        FilterVerdict verdict;
        verdict.action = FilterVerdict::Action::discard;
        verdict.reason = "milter " + milter().name;
        return finish(std::move(verdict));
      }
      case Outcome::reject:
      case Outcome::tempfail: {
        const bool reject = result.outcome == Outcome::reject;
        spdlog::info("message {}: milter-{}: END-OF-MESSAGE from {}: {} {}; milter={}",
                     request_.queue_id, reject ? "reject" : "tempfail", request_.client.address,
                     result.code, joined(result.text), milter().name);
        FilterVerdict verdict;
        verdict.action = reject ? FilterVerdict::Action::reject : FilterVerdict::Action::tempfail;
        verdict.code = result.code;
        verdict.enhanced = result.enhanced;
        verdict.text = std::move(result.text);
        verdict.reason = "milter " + milter().name;
        return finish(std::move(verdict));
      }
    }
  }

  // No verdict from this milter: its default_action, and one line saying so.
  void failed(const std::string& reason) {
    const MilterConfig& config = milter();
    spdlog::warn("message {}: milter {} ({}) unavailable: {}; default_action {}", request_.queue_id,
                 config.name, config.address, reason, action_name(config.default_action));
    FilterVerdict verdict;
    verdict.reason = "milter " + config.name + " unavailable";
    switch (config.default_action) {
      case MilterDefaultAction::accept:
        ++index_;
        return next();
      case MilterDefaultAction::reject:
        verdict.action = FilterVerdict::Action::reject;
        verdict.code = 550;
        verdict.enhanced = "5.7.1";
        verdict.text = {"5.7.1 Command rejected"};
        return finish(std::move(verdict));
      case MilterDefaultAction::tempfail:
        verdict.action = FilterVerdict::Action::tempfail;
        verdict.code = 451;
        verdict.enhanced = "4.7.1";
        verdict.text = {"4.7.1 Service unavailable - try again later"};
        return finish(std::move(verdict));
    }
  }

  void accept() {
    FilterVerdict verdict;
    if (working_.recipients.empty()) {
      verdict.action = FilterVerdict::Action::discard;
      verdict.reason = "the milters removed every recipient";
      return finish(std::move(verdict));
    }
    verdict.action =
        quarantine_.empty() ? FilterVerdict::Action::accept : FilterVerdict::Action::quarantine;
    verdict.reason = quarantine_;
    verdict.sender = std::move(working_.sender);
    verdict.recipients = std::move(working_.recipients);
    verdict.message = std::move(working_.message);
    finish(std::move(verdict));
  }

  // The last thing a Run does: the chain destroys it, from the loop, not
  // inside the conversation that called us.
  void finish(FilterVerdict verdict) {
    auto done = std::move(done_);
    later_.post([&chain = chain_, self = this] { chain.finished(self); });
    done(std::move(verdict));
  }

  MilterChain& chain_;
  FilterRequest request_;
  Done done_;
  DeferredCalls later_;
  std::size_t index_ = 0;
  EditedMessage working_;
  std::string quarantine_;
  std::unique_ptr<MilterConversation> conversation_;
};

MilterChain::MilterChain(event_base* base) : base_(base) {}

MilterChain::~MilterChain() = default;

void MilterChain::filter(FilterRequest request, Done done) {
  auto run = std::make_unique<Run>(*this, std::move(request), std::move(done));
  Run* raw = run.get();
  runs_.emplace(raw, std::move(run));
  raw->start();
}

void MilterChain::finished(Run* run) { runs_.erase(run); }

}  // namespace stokend::milter
