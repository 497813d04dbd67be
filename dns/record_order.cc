// Sorting and shuffling of MX and SRV records.
#include "dns/record_order.h"

#include <algorithm>
#include <cstdint>
#include <iterator>

namespace stokend::dns {

std::vector<MxRecord> order_mail_exchangers(std::vector<MxRecord> records, std::mt19937& random) {
  std::shuffle(records.begin(), records.end(), random);
  std::stable_sort(records.begin(), records.end(), [](const MxRecord& left, const MxRecord& right) {
    return left.preference < right.preference;
  });
  return records;
}

std::vector<SrvRecord> order_service_records(std::vector<SrvRecord> records, std::mt19937& random) {
  std::stable_sort(
      records.begin(), records.end(),
      [](const SrvRecord& left, const SrvRecord& right) { return left.priority < right.priority; });
  std::vector<SrvRecord> ordered;
  ordered.reserve(records.size());
  auto group_start = records.begin();
  while (group_start != records.end()) {
    auto group_end = std::find_if(group_start, records.end(), [&](const SrvRecord& record) {
      return record.priority != group_start->priority;
    });
    std::vector<SrvRecord> group(std::make_move_iterator(group_start),
                                 std::make_move_iterator(group_end));
    // RFC 2782, "Usage rules": weight 0 records at the beginning, then pick a
    // random number between 0 and the sum of the weights, inclusive, and take
    // the first record whose running sum of weights reaches it. Repeat.
    std::stable_partition(group.begin(), group.end(),
                          [](const SrvRecord& record) { return record.weight == 0; });
    while (!group.empty()) {
      std::uint32_t total = 0;
      for (const SrvRecord& record : group) total += record.weight;
      std::uniform_int_distribution<std::uint32_t> pick(0, total);
      std::uint32_t target = pick(random);
      std::uint32_t running_sum = 0;
      auto chosen = std::find_if(group.begin(), group.end(), [&](const SrvRecord& record) {
        running_sum += record.weight;
        return running_sum >= target;
      });
      ordered.push_back(std::move(*chosen));
      group.erase(chosen);
    }
    group_start = group_end;
  }
  return ordered;
}

std::mt19937& random_generator() {
  thread_local std::mt19937 generator{std::random_device{}()};
  return generator;
}

}  // namespace stokend::dns
