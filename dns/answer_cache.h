// A bounded cache of DNS answers, positive and negative, each kept for its TTL.
//
// Contract: keys are (record type, name); names compare without case and
// without a trailing dot. Only ok, no_data and not_found answers with a TTL
// above zero are stored; temporary failures never are. A hit reports the
// remaining TTL (rounded up). When full, the least recently used entry goes.
// A capacity of zero disables the cache. Not thread-safe: loop thread only.
#pragma once

#include <chrono>
#include <cstddef>
#include <functional>
#include <list>
#include <optional>
#include <string>
#include <unordered_map>
#include <variant>
#include <vector>

#include "dns/record_type.h"
#include "dns/resolver.h"

namespace stokend::dns {

class AnswerCache {
 public:
  using Clock = std::chrono::steady_clock;
  using Now = std::function<Clock::time_point()>;

  explicit AnswerCache(std::size_t capacity, Now now = &Clock::now);

  template <class Record>
  std::optional<Answer<Record>> find(RecordType type, const std::string& name);

  template <class Record>
  void store(RecordType type, const std::string& name, const Answer<Record>& answer);

  std::size_t size() const { return entries_.size(); }

 private:
  using Records =
      std::variant<std::vector<MxRecord>, std::vector<SrvRecord>, std::vector<std::string>>;

  struct Entry {
    std::string key;
    Status status;
    Records records;
    std::string error;
    Clock::time_point expires;
  };

  static std::string key_of(RecordType type, const std::string& name);
  // The live entry for key, moved to the front; nullptr if absent or expired.
  Entry* find_entry(const std::string& key);
  void insert_entry(Entry entry);

  std::size_t capacity_;
  Now now_;
  std::list<Entry> entries_;  // most recently used first
  std::unordered_map<std::string, std::list<Entry>::iterator> index_;
};

template <class Record>
std::optional<Answer<Record>> AnswerCache::find(RecordType type, const std::string& name) {
  Entry* entry = find_entry(key_of(type, name));
  if (!entry) return std::nullopt;
  const auto* records = std::get_if<std::vector<Record>>(&entry->records);
  if (!records) return std::nullopt;
  auto remaining = std::chrono::ceil<std::chrono::seconds>(entry->expires - now_());
  return Answer<Record>{entry->status, *records, entry->error,
                        static_cast<std::uint32_t>(remaining.count())};
}

template <class Record>
void AnswerCache::store(RecordType type, const std::string& name, const Answer<Record>& answer) {
  if (capacity_ == 0 || answer.ttl_seconds == 0) return;
  if (answer.status == Status::temporary_failure) return;
  insert_entry(Entry{key_of(type, name), answer.status, answer.records, answer.error,
                     now_() + std::chrono::seconds(answer.ttl_seconds)});
}

}  // namespace stokend::dns
