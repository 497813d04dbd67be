// Preset answers, delivered through the deferred-call queue.
#include "tests/support/fake_resolver.h"

#include "dns/address_answers.h"

namespace stokend::dns {

FakeResolver::FakeResolver(event_base* base) : deferred_(base) {}

void FakeResolver::set_mx(const std::string& domain, Answer<MxRecord> answer) {
  mx_answers_[domain] = std::move(answer);
}

void FakeResolver::set_addresses(const std::string& host, Answer<std::string> answer) {
  address_answers_[host] = std::move(answer);
}

void FakeResolver::set_srv(const std::string& name, Answer<SrvRecord> answer) {
  srv_answers_[name] = std::move(answer);
}

void FakeResolver::set_txt(const std::string& name, Answer<std::string> answer) {
  txt_answers_[name] = std::move(answer);
}

void FakeResolver::resolve_mx(const std::string& domain, AnswerCallback<MxRecord> callback) {
  questions_.push_back("MX " + domain);
  answer_later(mx_answers_, domain, std::move(callback));
}

void FakeResolver::resolve_addresses(const std::string& host,
                                     AnswerCallback<std::string> callback) {
  questions_.push_back("ADDRESSES " + host);
  if (auto literal = ip_literal_answer(host)) {
    deferred_.post([callback = std::move(callback), answer = std::move(*literal)]() mutable {
      callback(std::move(answer));
    });
    return;
  }
  answer_later(address_answers_, host, std::move(callback));
}

void FakeResolver::resolve_srv(const std::string& name, AnswerCallback<SrvRecord> callback) {
  questions_.push_back("SRV " + name);
  answer_later(srv_answers_, name, std::move(callback));
}

void FakeResolver::resolve_txt(const std::string& name, AnswerCallback<std::string> callback) {
  questions_.push_back("TXT " + name);
  answer_later(txt_answers_, name, std::move(callback));
}

template <class Record>
void FakeResolver::answer_later(const std::map<std::string, Answer<Record>>& answers,
                                const std::string& name, AnswerCallback<Record> callback) {
  auto preset = answers.find(name);
  Answer<Record> answer =
      preset != answers.end()
          ? preset->second
          : failed_answer<Record>(Status::not_found, "no preset answer for " + name);
  deferred_.post([callback = std::move(callback), answer = std::move(answer)]() mutable {
    callback(std::move(answer));
  });
}

}  // namespace stokend::dns
