// LRU bookkeeping for the answer cache: a list in use order plus an index.
#include "dns/answer_cache.h"

#include <utility>

namespace stokend::dns {

AnswerCache::AnswerCache(std::size_t capacity, Now now)
    : capacity_(capacity), now_(std::move(now)) {}

std::string AnswerCache::key_of(RecordType type, const std::string& name) {
  // Domain names compare case-insensitively (RFC 4343); "a.test." is "a.test".
  std::string key(to_string(type));
  key += ' ';
  for (char letter : name) {
    key += (letter >= 'A' && letter <= 'Z') ? static_cast<char>(letter - 'A' + 'a') : letter;
  }
  if (key.size() > 1 && key.back() == '.') key.pop_back();
  return key;
}

AnswerCache::Entry* AnswerCache::find_entry(const std::string& key) {
  auto found = index_.find(key);
  if (found == index_.end()) return nullptr;
  if (found->second->expires <= now_()) {
    entries_.erase(found->second);
    index_.erase(found);
    return nullptr;
  }
  entries_.splice(entries_.begin(), entries_, found->second);
  return &entries_.front();
}

void AnswerCache::insert_entry(Entry entry) {
  if (auto found = index_.find(entry.key); found != index_.end()) {
    entries_.erase(found->second);
    index_.erase(found);
  }
  while (entries_.size() >= capacity_) {
    index_.erase(entries_.back().key);
    entries_.pop_back();
  }
  entries_.push_front(std::move(entry));
  index_.emplace(entries_.front().key, entries_.begin());
}

}  // namespace stokend::dns
