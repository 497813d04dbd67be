// A resolver with preset answers, for unit tests of code that uses DNS.
//
// Contract: that of Resolver (dns/resolver.h): answers arrive on a later loop
// iteration, never inside the resolve_* call, and never after destruction.
// A question with no preset answer gets not_found. resolve_addresses answers
// from the addresses preset for the host as a whole (set_addresses), or from
// the literal itself for an IP literal. Every question is recorded, in order,
// as "TYPE name" ("MX example.org", "ADDRESSES mx.example.org").
#pragma once

#include <map>
#include <string>
#include <utility>
#include <vector>

#include "common/deferred_calls.h"
#include "dns/resolver.h"

namespace stokend::dns {

class FakeResolver final : public Resolver {
 public:
  explicit FakeResolver(event_base* base);

  void set_mx(const std::string& domain, Answer<MxRecord> answer);
  void set_addresses(const std::string& host, Answer<std::string> answer);
  void set_srv(const std::string& name, Answer<SrvRecord> answer);
  void set_txt(const std::string& name, Answer<std::string> answer);

  void resolve_mx(const std::string& domain, AnswerCallback<MxRecord> callback) override;
  void resolve_addresses(const std::string& host, AnswerCallback<std::string> callback) override;
  void resolve_srv(const std::string& name, AnswerCallback<SrvRecord> callback) override;
  void resolve_txt(const std::string& name, AnswerCallback<std::string> callback) override;

  const std::vector<std::string>& questions() const { return questions_; }

 private:
  template <class Record>
  void answer_later(const std::map<std::string, Answer<Record>>& answers, const std::string& name,
                    AnswerCallback<Record> callback);

  std::map<std::string, Answer<MxRecord>> mx_answers_;
  std::map<std::string, Answer<std::string>> address_answers_;
  std::map<std::string, Answer<SrvRecord>> srv_answers_;
  std::map<std::string, Answer<std::string>> txt_answers_;
  std::vector<std::string> questions_;
  DeferredCalls deferred_;
};

// Shorthands for building preset answers.
template <class Record>
Answer<Record> ok_answer(std::vector<Record> records, std::uint32_t ttl_seconds = 300) {
  return Answer<Record>{Status::ok, std::move(records), "", ttl_seconds};
}

template <class Record>
Answer<Record> failed_answer(Status status, std::string error = "") {
  return Answer<Record>{status, {}, std::move(error), 0};
}

}  // namespace stokend::dns
