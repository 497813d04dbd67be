// See queue_commands.h.
#include "mta/control/queue_commands.h"

#include <memory>
#include <optional>
#include <utility>

#include "common/ascii.h"
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
    case Command::requeue:
      return "requeued";
    default:
      return "deleted";
  }
}

bool at_domain(std::string_view address, std::string_view domain) {
  const std::size_t at = address.rfind('@');
  return at != std::string_view::npos && equals_ignoring_case(address.substr(at + 1), domain);
}

// What a selection's changes add up to, answered once the last is durable.
struct SelectionTally {
  Command command;
  std::size_t outstanding = 0;
  std::size_t changed = 0;
  std::size_t failed = 0;
  std::size_t not_only_domain = 0;
  std::string domain;
  std::function<void(Answer)> done;

  void record(queue::AdminOutcome outcome) {
    if (outcome == queue::AdminOutcome::done) ++changed;
    if (outcome == queue::AdminOutcome::storage_failed) ++failed;
    // no_such_message: gone meanwhile (delivered, or deleted by another
    // request); nothing left to change.
    settle();
  }

  void settle() {
    if (--outstanding == 0) finish();
  }

  void finish() {
    if (failed != 0) {
      done(error_answer("the spool could not record " + count_of(failed, "change", "changes") +
                        " (" + std::to_string(changed) + " made); see the daemon's log"));
      return;
    }
    std::string text =
        count_of(changed, "message", "messages") + " " + std::string(past_tense(command)) + "\n";
    if (not_only_domain != 0) {
      text += count_of(not_only_domain, "message", "messages") + " for " + domain +
              " left alone: they also have recipients elsewhere\n";
    }
    done(Answer{true, {}, text});
  }
};

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

namespace {

void change_message(queue::QueueManager& queue, Command command, const std::string& id,
                    queue::QueueManager::AdminDone report) {
  switch (command) {
    case Command::hold:
      return queue.hold(id, std::move(report));
    case Command::release:
      return queue.release(id, std::move(report));
    case Command::remove:
      return queue.remove(id, std::move(report));
    case Command::requeue:
      return queue.requeue(id, std::move(report));
    default:
      return report(queue::AdminOutcome::no_such_message);
  }
}

}  // namespace

std::vector<std::string> selected_messages(const queue::QueueManager& queue, const Request& request,
                                           std::size_t& not_only_domain) {
  not_only_domain = 0;
  std::vector<std::string> ids;
  for (const queue::MessageSummary& summary : queue.list()) {
    if (request.all) {
      ids.push_back(summary.id);
      continue;
    }
    const std::optional<queue::MessageDetails> details = queue.show(summary.id);
    if (!details) continue;
    std::size_t here = 0;
    std::size_t elsewhere = 0;
    for (std::size_t i = 0; i < details->recipients.size(); ++i) {
      if (details->state.recipients[i].status != queue::RecipientStatus::pending) continue;
      ++(at_domain(details->recipients[i], request.domain) ? here : elsewhere);
    }
    if (here != 0 && elsewhere == 0) ids.push_back(summary.id);
    if (here != 0 && elsewhere != 0) ++not_only_domain;
  }
  return ids;
}

void change_messages(queue::QueueManager& queue, const Request& request,
                     std::function<void(Answer)> done) {
  if (!request.selects_many()) {
    const Command command = request.command;
    const std::string id = request.id;
    return change_message(
        queue, command, id, [command, id, done = std::move(done)](queue::AdminOutcome outcome) {
          switch (outcome) {
            case queue::AdminOutcome::done:
              return done(Answer{true, {}, id + " " + std::string(past_tense(command)) + "\n"});
            case queue::AdminOutcome::no_such_message:
              return done(error_answer(no_such_message));
            case queue::AdminOutcome::storage_failed:
              return done(
                  error_answer("the spool could not record the change; see the daemon's log"));
          }
        });
  }
  auto tally = std::make_shared<SelectionTally>();
  tally->command = request.command;
  tally->domain = request.domain;
  tally->done = std::move(done);
  const std::vector<std::string> ids = selected_messages(queue, request, tally->not_only_domain);
  if (ids.empty()) return tally->finish();
  // One more than the changes, released below, so that a change reporting
  // before its call returns cannot finish the tally early.
  tally->outstanding = ids.size() + 1;
  for (const std::string& id : ids) {
    change_message(queue, request.command, id,
                   [tally](queue::AdminOutcome outcome) { tally->record(outcome); });
  }
  tally->settle();
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
