// The real resolver: asks DNS servers through c-ares on the libevent loop and
// caches answers, positive and negative, for their TTL.
//
// Contract: that of Resolver (dns/resolver.h): loop thread only, callbacks
// always deferred to a later loop iteration, none after destruction. Errors
// are reported in answers; only the constructor throws (std::runtime_error,
// e.g. for a malformed server list).
#pragma once

#include <chrono>
#include <cstddef>
#include <memory>
#include <span>
#include <string>

#include "common/deferred_calls.h"
#include "dns/answer_cache.h"
#include "dns/ares_channel.h"
#include "dns/resolver.h"

namespace stokend::dns {

struct ResolverOptions {
  // "127.0.0.1:5353,[::1]:53" style list; empty means the system's resolv.conf.
  std::string servers;
  // Wait for the first try at each server; c-ares doubles it on each round.
  std::chrono::milliseconds timeout{5000};
  int tries = 3;
  // Cached answers kept at most; zero turns the cache off.
  std::size_t cache_entries = 10000;
  // A negative answer without an SOA to take its TTL from is cached this long.
  std::chrono::seconds default_negative_ttl{60};
  // Upper bounds on how long answers are cached, whatever their TTL says.
  std::chrono::seconds max_negative_ttl{3600};
  std::chrono::seconds max_positive_ttl{86400};
};

class AresResolver final : public Resolver {
 public:
  AresResolver(event_base* base, ResolverOptions options);
  ~AresResolver() override;
  AresResolver(const AresResolver&) = delete;
  AresResolver& operator=(const AresResolver&) = delete;

  void resolve_mx(const std::string& domain, AnswerCallback<MxRecord> callback) override;
  void resolve_addresses(const std::string& host, AnswerCallback<std::string> callback) override;
  void resolve_srv(const std::string& name, AnswerCallback<SrvRecord> callback) override;
  void resolve_txt(const std::string& name, AnswerCallback<std::string> callback) override;

 private:
  template <class Record>
  using Parser = int (*)(std::span<const unsigned char>, std::vector<Record>&);

  // Answers one question from the cache or from the servers, always deferred.
  template <class Record>
  void look_up(const std::string& name, RecordType type, Parser<Record> parse,
               AnswerCallback<Record> callback);

  template <class Record>
  Answer<Record> make_answer(const std::string& name, RecordType type, int ares_status,
                             std::span<const unsigned char> response, Parser<Record> parse) const;

  // How long answers may be cached, from the response and the options.
  std::uint32_t positive_ttl(std::span<const unsigned char> response) const;
  std::uint32_t negative_ttl(std::span<const unsigned char> response) const;

  template <class Record>
  void deliver_later(AnswerCallback<Record> callback, Answer<Record> answer);

  ResolverOptions options_;
  AnswerCache cache_;
  DeferredCalls deferred_;
  // Last, so that it goes first: no response can arrive after the cache and
  // the deferred calls are gone.
  std::unique_ptr<AresChannel> channel_;
};

}  // namespace stokend::dns
