// See queue_commands.h.
#include "mta/control/queue_commands.h"

#include <optional>
#include <utility>

#include "mta/control/queue_report.h"

namespace stokend::control {
namespace {

Answer error_answer(std::string_view reason) { return Answer{false, std::string(reason), {}}; }

std::string_view past_tense(Command command) {
  switch (command) {
    case Command::hold:
      return "held";
    case Command::release:
      return "released";
    default:
      return "deleted";
  }
}

}  // namespace

Answer show_message(const queue::QueueManager& queue, const std::string& id) {
  const std::optional<queue::MessageDetails> details = queue.show(id);
  if (!details) return error_answer(no_such_message);
  return Answer{true, {}, message_report(*details)};
}

Answer flush_messages(queue::QueueManager& queue, const std::string& id) {
  std::string note;
  if (!id.empty()) {
    // flush() cannot tell an unknown id from a message with nothing due.
    const std::optional<queue::MessageDetails> details = queue.show(id);
    if (!details) return error_answer(no_such_message);
    if (details->summary.held) note = " (" + id + " is held: release it to deliver it)";
  }
  const std::size_t scheduled = queue.flush(id);
  return Answer{true, {}, count_of(scheduled, "message", "messages") + " scheduled" + note + "\n"};
}

void change_message(queue::QueueManager& queue, Command command, const std::string& id,
                    std::function<void(Answer)> done) {
  auto report = [command, id, done = std::move(done)](queue::AdminOutcome outcome) {
    switch (outcome) {
      case queue::AdminOutcome::done:
        return done(Answer{true, {}, id + " " + std::string(past_tense(command)) + "\n"});
      case queue::AdminOutcome::no_such_message:
        return done(error_answer(no_such_message));
      case queue::AdminOutcome::storage_failed:
        return done(error_answer("the spool could not record the change; see the daemon's log"));
    }
  };
  switch (command) {
    case Command::hold:
      return queue.hold(id, std::move(report));
    case Command::release:
      return queue.release(id, std::move(report));
    case Command::remove:
      return queue.remove(id, std::move(report));
    default:
      return report(queue::AdminOutcome::no_such_message);
  }
}

QueueListing::QueueListing(const queue::QueueManager& queue) : queue_(queue) {
  for (const queue::MessageSummary& summary : queue.list()) ids_.push_back(summary.id);
}

bool QueueListing::append_next(std::string& text, std::size_t max_messages) {
  if (complete_) return true;
  for (std::size_t looked_at = 0; looked_at < max_messages && next_ < ids_.size(); ++looked_at) {
    const std::optional<queue::MessageDetails> details = queue_.show(ids_[next_++]);
    if (!details) continue;
    if (messages_listed_ == 0) text += listing_heading();
    text += listing_entry(*details);
    ++messages_listed_;
    pending_recipients_ += details->summary.pending;
  }
  if (next_ < ids_.size()) return false;
  text += messages_listed_ == 0 ? empty_queue_text()
                                : listing_summary(messages_listed_, pending_recipients_);
  complete_ = true;
  return true;
}

}  // namespace stokend::control
