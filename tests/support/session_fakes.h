// Test doubles for what a session reaches through narrow interfaces
// (mta/server/server_context.h): the queue's intake, the users, the worker
// threads, the next hop's recipient check and the Token Server's
// synchronous delivery. Each answers on a later loop iteration, as the real
// ones do, and records what it was asked.
#pragma once

#include <deque>
#include <functional>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <system_error>
#include <utility>
#include <vector>

#include "common/ascii.h"
#include "common/deferred_calls.h"
#include "message/address.h"
#include "mta/auth/sasl_authenticator.h"
#include "mta/recipient_verifier.h"
#include "mta/server/token_delivery.h"
#include "mta/user_lookup.h"
#include "mta/work_runner.h"
#include "queue/message_intake.h"

namespace stokend::testing {

// The queue: records every message; answers "queued as qN", or fails with
// the error the test chose (fail_with).
class FakeMessageIntake final : public queue::MessageIntake {
 public:
  struct Enqueued {
    queue::Envelope envelope;
    std::string data;
  };

  explicit FakeMessageIntake(event_base* base) : deferred_(base) {}

  void enqueue(queue::Envelope envelope, std::string data, EnqueueDone done) override {
    queue::EnqueueResult result;
    if (fail_with) {
      result.error = *fail_with;
    } else {
      result.id = "q" + std::to_string(messages.size() + 1);
      messages.push_back({std::move(envelope), std::move(data)});
    }
    deferred_.post([done = std::move(done), result] { done(result); });
  }

  std::vector<Enqueued> messages;
  std::optional<std::error_code> fail_with;

 private:
  DeferredCalls deferred_;
};

// The users: a map the test fills; counts the refreshes the session asks for.
class FakeUserLookup final : public UserLookup {
 public:
  void add(const std::string& address, std::string password_hash = {}) {
    users_[address] = User{address, std::move(password_hash), CoiFilter::off};
  }
  bool refresh_if_changed() override {
    ++refreshes;
    return false;
  }
  const User* find(std::string_view address) const override {
    const auto found = users_.find(ascii_lowercase(address));
    return found == users_.end() ? nullptr : &found->second;
  }
  // As a remote directory (Dovecot's userdb) answers: with `asynchronous`,
  // only when the test calls answer_pending(); with `unavailable`, a
  // temporary failure.
  std::optional<UserAnswer> lookup(const std::string& address, AnswerCallback done) override {
    ++lookups;
    refresh_if_changed();  // as UserLookup's own lookup() does
    UserAnswer answer;
    if (unavailable) {
      answer.status = UserAnswer::Status::temporary_failure;
    } else if (const User* user = find(address)) {
      answer = UserAnswer{UserAnswer::Status::found, *user};
    }
    if (!asynchronous) return answer;
    pending_.push_back([done = std::move(done), answer] { done(answer); });
    return std::nullopt;
  }
  // Answers the lookups waiting so far; returns how many.
  std::size_t answer_pending() {
    auto pending = std::move(pending_);
    pending_.clear();
    for (auto& answer : pending) answer();
    return pending.size();
  }

  std::size_t refreshes = 0;
  std::size_t lookups = 0;
  bool asynchronous = false;
  bool unavailable = false;

 private:
  std::map<std::string, User> users_;
  std::vector<std::function<void()>> pending_;
};

// An outside SASL service (Dovecot's auth, mta/auth/sasl_authenticator.h)
// that answers when the test says so: step() delivers the service's next
// answer to the exchange in progress, never inside begin() or respond().
class FakeSaslAuthenticator final : public auth::SaslAuthenticator {
 public:
  std::vector<std::string> mechanisms() const override { return offered; }
  std::uint32_t begin(const auth::SaslStart& start, auth::SaslCallback callback) override {
    started.push_back(start);
    callback_ = std::move(callback);
    return ++last_id_;
  }
  void respond(std::uint32_t, const std::string& response) override {
    responses.push_back(response);
  }
  void abandon(std::uint32_t id) override {
    abandoned.push_back(id);
    callback_ = nullptr;
  }
  // The service's next answer; false when no exchange is waiting for one.
  bool step(auth::SaslStep::Kind kind, std::string text = {}) {
    if (!callback_) return false;
    auto callback = callback_;
    if (kind != auth::SaslStep::Kind::challenge) callback_ = nullptr;
    callback(auth::SaslStep{kind, std::move(text)});
    return true;
  }

  std::vector<std::string> offered{"PLAIN", "LOGIN", "CRAM-MD5"};
  std::vector<auth::SaslStart> started;
  std::vector<std::string> responses;
  std::vector<std::uint32_t> abandoned;

 private:
  auth::SaslCallback callback_;
  std::uint32_t last_id_ = 0;
};

// The worker threads, on the loop thread: a job runs when the test says so
// (run_pending), or at once when run_at_once is set; its completion runs on
// a later loop iteration either way, never inside submit().
class FakeWorkRunner final : public WorkRunner {
 public:
  explicit FakeWorkRunner(event_base* base) : deferred_(base) {}

  void submit(Job job) override {
    ++submitted;
    if (run_at_once) return run(std::move(job));
    pending_.push_back(std::move(job));
  }
  // Runs the jobs submitted so far; returns how many ran.
  std::size_t run_pending() {
    std::size_t ran = 0;
    while (!pending_.empty()) {
      Job job = std::move(pending_.front());
      pending_.pop_front();
      run(std::move(job));
      ++ran;
    }
    return ran;
  }
  std::size_t pending() const { return pending_.size(); }

  bool run_at_once = true;
  std::size_t submitted = 0;

 private:
  void run(Job job) {
    Completion completion = job();
    if (completion) deferred_.post(std::move(completion));
  }

  std::deque<Job> pending_;
  DeferredCalls deferred_;
};

// The next hop's answer about recipients of a recipient_probe domain: the
// verdict set per address (unverifiable for the others).
class FakeRecipientVerifier final : public RecipientVerifier {
 public:
  explicit FakeRecipientVerifier(event_base* base) : deferred_(base) {}

  void verify(const std::string& address, const Destination&, Done done) override {
    asked.push_back(address);
    RecipientCheck check;
    if (const auto found = answers.find(address); found != answers.end()) check = found->second;
    deferred_.post([done = std::move(done), check] { done(check); });
  }

  std::map<std::string, RecipientCheck> answers;
  std::vector<std::string> asked;

 private:
  DeferredCalls deferred_;
};

// The Token Server's mailstore delivery: "250 2.1.12 <addr> dN Delivered"
// for every recipient, recording what it delivered.
class FakeSynchronousDelivery final : public server::SynchronousDelivery {
 public:
  explicit FakeSynchronousDelivery(event_base* base) : deferred_(base) {}

  void deliver(const queue::QueuedMessage& message, std::vector<server::TokenRecipient> recipients,
               Done done) override {
    std::vector<std::string> replies;
    for (const auto& recipient : recipients) {
      replies.push_back("250 2.1.12 <" + recipient.address + "> d" +
                        std::to_string(delivered.size() + 1) + " Delivered");
    }
    delivered.push_back(message);
    deferred_.post([done = std::move(done), replies] { done(replies); });
  }

  std::vector<queue::QueuedMessage> delivered;

 private:
  DeferredCalls deferred_;
};

}  // namespace stokend::testing
